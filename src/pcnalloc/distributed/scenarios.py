"""Trust scenarios: malicious relay sites and false user feedback on a running network.

A seeded simulation plays a policy on :class:`~pcnalloc.envs.PowerCommEnv` and, every slot
of ``requests_per_slot`` decisions, closes the slot of the Bayesian reputation
(:mod:`pcnalloc.distributed.trust`) and writes the reputations into
``env.state.trust_N1[:-1]``, so the environment's trust rule (``trust_zone_1_2``) keeps
Zone I/II traffic off sites whose reputation fell below ``EnvConfig.trust_threshold``.

Threat model (after BC-DRL §II-A and its Table I):

- **Malicious sites** silently drop ``drop_share`` of the flows they *relay* (transit, not
  the flow's own endpoints); a flow is delivered only if no malicious transit site on its
  primary route dropped it (each drops independently).
- **Feedback.** The user of every accepted flow reports once, in the slot of admission,
  whether it was served (1) or not (0), with probability ``feedback_probability``. The user
  cannot tell which hop failed, so the feedback counts for every transit site of the route
  (and the endpoints too with ``include_endpoints``). Honest sites sharing routes with a
  malicious one therefore collect some negative feedback: that is the false-isolation risk
  this scenario measures.
- **Malicious users**: a share ``malicious_feedback_share`` of feedbacks is untruthful —
  served flows are reported denied and denied ones served (Table I, columns 3–4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.distributed.config import RATES, TrustScenario
from pcnalloc.distributed.trust import ReputationTracker
from pcnalloc.envs.features import ZONE_RT_NRT
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "RATES",
    "TrustScenario",
    "feedback_sweep",
    "plot_feedback_sweep",
    "plot_trust_curves",
    "run_trust_scenario",
]


def _pick_malicious(env: PowerCommEnv, spec: int | list[str], rng: np.random.Generator):
    net = env.net
    if isinstance(spec, list):
        index = {n: i for i, n in enumerate(net.site_names)}
        bad = [n for n in spec if n not in index]
        if bad:
            raise ConfigError(
                f"unknown malicious site(s) {bad}; accepted: site names of {net.name} "
                f"({', '.join(net.site_names[:8])}, …)"
            )
        return np.array(sorted(index[n] for n in spec), dtype=np.int64)
    pool = np.setdiff1d(np.flatnonzero(net.degree() >= 2), np.array(net.control_centers))
    if spec > pool.size:
        raise ConfigError(
            f"malicious_sites={spec} exceeds the {pool.size} eligible sites of {net.name}"
        )
    return np.sort(rng.choice(pool, size=spec, replace=False)).astype(np.int64)


def _refresh(env: PowerCommEnv) -> dict:
    """Re-evaluate the pending request after its trust changed and rebuild the observation."""
    return env.refresh()


def run_trust_scenario(
    sc: TrustScenario,
    progress: Callable[[int], None] | None = None,
    env: PowerCommEnv | None = None,
) -> dict[str, Any]:
    """Play one scenario; return reputations per slot and isolation statistics.

    Args:
        sc: the scenario.
        progress: called with 1 after every slot.
        env: an environment built from ``sc.env_config()`` to reuse (its episode length may
            differ; the scenario plays ``slots × requests_per_slot`` decisions regardless).

    Returns:
        A JSON-ready dict: ``scenario``, ``site_names``, ``malicious`` (site indices),
        ``threshold``, ``reputation_TN`` (slot × site, slot 0 = initial),
        ``feedback_TN`` (feedbacks per slot and site), ``isolation_slot`` (per malicious site
        name: first slot with reputation < threshold, or None), ``false_isolation_rate``
        (share of honest sites that ever fell below the threshold),
        ``final_false_isolation_rate``, ``honest_final_mean``/``honest_final_min`` (over
        honest sites that received feedback), ``honest_final_weighted`` (their mean weighted
        by feedback received: the reputation an average reporting user's route sees),
        ``malicious_final``, ``committee_final``,
        ``critical_via_malicious`` (accepted Zone I/II flows routed through a malicious site
        while its trust was at/above the threshold, and while below it — the trust rule
        keeps the latter at 0) and ``outcomes``.
    """
    cfg = sc.env_config()
    if env is None:
        env = PowerCommEnv(cfg, observation="compact")
    else:
        cfg = env.cfg
    policy = make_policy(sc.policy)
    env_seq, atk_seq = np.random.SeedSequence(sc.seed).spawn(2)
    rng = np.random.default_rng(atk_seq)
    net = env.net
    N, E, L = net.n_sites, net.n_links, cfg.grant_levels
    malicious = _pick_malicious(env, sc.malicious_sites, rng)
    is_mal_N = np.zeros(N, dtype=bool)
    is_mal_N[malicious] = True
    tracker = ReputationTracker(N, sc.trust)
    thr = cfg.trust_threshold
    critical_C = env.catalog.zone_C < ZONE_RT_NRT

    env_seed = int(env_seq.generate_state(1)[0])
    policy.reset(env_seed)
    obs, _ = env.reset(seed=env_seed)
    rep_T = [tracker.reputation_N.copy()]
    fb_T: list[np.ndarray] = []
    outcomes: dict[str, int] = {}
    via_mal = {"before_isolation": 0, "after_isolation": 0}
    for _slot in range(sc.slots):
        pos = np.zeros(N, dtype=np.int64)
        neg = np.zeros(N, dtype=np.int64)
        for _ in range(sc.requests_per_slot):
            a = policy.act(obs)
            req = env.current_request
            route = None
            if a != env.reject_action and env.current_evaluation.mask_A[a]:
                lk = env.current_candidates.links_KH[a // L]
                route = lk[lk < E]
            obs, _, _, _, info = env.step(a)
            outcomes[info["outcome"]] = outcomes.get(info["outcome"], 0) + 1
            if info["outcome"] != "accepted" or route is None:
                continue
            sites = np.unique(net.link_ends[route])
            relay = sites[(sites != req.src) & (sites != req.dst)]
            mal_relay = relay[is_mal_N[relay]]
            on_mal = sites[is_mal_N[sites]]
            if critical_C[req.cls] and on_mal.size:
                below = env.state.trust_N1[on_mal] < thr  # the trust rule should forbid these
                via_mal["after_isolation" if below.any() else "before_isolation"] += 1
            served = not (rng.random(mal_relay.size) < sc.drop_share).any()
            if rng.random() >= sc.feedback_probability:
                continue
            report = served != bool(rng.random() < sc.malicious_feedback_share)
            judged = sites if sc.include_endpoints else relay
            if report:
                pos[judged] += 1
            else:
                neg[judged] += 1
        rep = tracker.update(pos, neg)
        env.state.trust_N1[:-1] = rep
        obs = _refresh(env)
        rep_T.append(rep.copy())
        fb_T.append(pos + neg)
        if progress is not None:
            progress(1)

    rep_TN = np.array(rep_T)
    fb_TN = np.array(fb_T)
    honest = ~is_mal_N
    heard = honest & (fb_TN.sum(0) > 0)
    below_TN = rep_TN < thr
    first = [int(np.argmax(below_TN[:, m])) if below_TN[:, m].any() else None for m in malicious]
    final = rep_TN[-1]
    return {
        "scenario": sc.model_dump(),
        "site_names": list(net.site_names),
        "malicious": malicious.tolist(),
        "threshold": thr,
        "reputation_TN": np.round(rep_TN, 6).tolist(),
        "feedback_TN": fb_TN.tolist(),
        "isolation_slot": {net.site_names[m]: s for m, s in zip(malicious, first, strict=True)},
        "false_isolation_rate": float(below_TN[:, honest].any(0).mean()) if honest.any() else 0.0,
        "final_false_isolation_rate": float((final[honest] < thr).mean()) if honest.any() else 0.0,
        "honest_sites_with_feedback": int(heard.sum()),
        "honest_final_mean": float(final[heard].mean()) if heard.any() else 1.0,
        "honest_final_min": float(final[heard].min()) if heard.any() else 1.0,
        "honest_final_weighted": (
            float(np.average(final[heard], weights=fb_TN.sum(0)[heard])) if heard.any() else 1.0
        ),
        "malicious_final": {net.site_names[m]: round(float(final[m]), 6) for m in malicious},
        "committee_final": [net.site_names[i] for i in np.flatnonzero(tracker.committee())],
        "critical_via_malicious": via_mal,
        "outcomes": outcomes,
    }


def feedback_sweep(
    base: TrustScenario,
    shares: Sequence[float],
    rates: dict[str, int] | None = None,
    seeds: Sequence[int] = (0,),
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Final honest-site reputation vs malicious-feedback share at each request rate.

    Reproduces the setting of BC-DRL Fig. 5(a): no malicious site, a growing share of
    untruthful feedback, a low and a high request rate.

    Returns:
        One row per (rate, share): ``rate``, ``requests_per_slot``, ``share``,
        ``honest_final_weighted``, ``honest_final_mean`` and ``honest_final_min`` (means
        over seeds),
        ``false_isolation_rate`` (mean over seeds).
    """
    rows = []
    env = PowerCommEnv(base.env_config(), observation="compact")
    for name, rps in (rates or RATES).items():
        for share in shares:
            res = [
                run_trust_scenario(
                    base.model_copy(
                        update={
                            "malicious_sites": 0,
                            "malicious_feedback_share": float(share),
                            "requests_per_slot": rps,
                            "seed": s,
                        }
                    ),
                    env=env,
                )
                for s in seeds
            ]
            rows.append(
                {
                    "rate": name,
                    "requests_per_slot": rps,
                    "share": float(share),
                    "honest_final_weighted": float(
                        np.mean([r["honest_final_weighted"] for r in res])
                    ),
                    "honest_final_mean": float(np.mean([r["honest_final_mean"] for r in res])),
                    "honest_final_min": float(np.mean([r["honest_final_min"] for r in res])),
                    "false_isolation_rate": float(
                        np.mean([r["false_isolation_rate"] for r in res])
                    ),
                }
            )
            if progress is not None:
                progress(len(seeds))
    return rows


def plot_trust_curves(result: dict[str, Any], path: str | Path) -> Path:
    """PNG of reputation over slots: honest sites grey, malicious red, threshold dashed."""
    from pcnalloc.core.plotting import subplots

    rep_TN = np.array(result["reputation_TN"])
    mal = set(result["malicious"])
    fig, ax = subplots(figsize=(7, 4))
    for i in range(rep_TN.shape[1]):
        if i not in mal:
            ax.plot(rep_TN[:, i], color="0.6", lw=0.8)
    for i in sorted(mal):
        ax.plot(rep_TN[:, i], color="tab:red", lw=2, label=f"malicious {result['site_names'][i]}")
    ax.plot([], [], color="0.6", label="honest sites")
    ax.axhline(result["threshold"], ls="--", color="k", lw=1, label="trust threshold")
    sc = result["scenario"]
    ax.set(
        xlabel="slot",
        ylabel="reputation",
        ylim=(-0.02, 1.02),
        title=f"{sc['case']}: drop share {sc['drop_share']}, false feedback "
        f"{sc['malicious_feedback_share']:.0%}, {sc['requests_per_slot']} requests/slot",
    )
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def plot_feedback_sweep(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """PNG of final honest reputation (feedback-weighted mean, and min) vs malicious-feedback
    share, one colour per request rate."""
    from pcnalloc.core.plotting import subplots

    fig, ax = subplots(figsize=(6, 4))
    for rate in dict.fromkeys(r["rate"] for r in rows):
        rr = [r for r in rows if r["rate"] == rate]
        x = [100 * r["share"] for r in rr]
        lbl = f"{rate} ({rr[0]['requests_per_slot']}/slot)"
        line = ax.plot(
            x, [r["honest_final_weighted"] for r in rr], marker="o", label=f"{lbl}: weighted"
        )
        c = line[0].get_color()
        ax.plot(x, [r["honest_final_min"] for r in rr], ls=":", color=c, label=f"{lbl}: min")
    ax.set(
        xlabel="malicious feedback share (%)",
        ylabel="final reputation of honest sites",
        ylim=(-0.02, 1.02),
    )
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    from pcnalloc.core.plotting import save_png

    return save_png(fig, path, dpi=120)
