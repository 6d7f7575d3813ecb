"""Seeded trajectories of the simulator stay bit-identical to the recorded reference.

The reference (``tests/envs/data/sim_parity.json``) was recorded with the simulator as it
was before its decision path was made faster (commit a2696d6). Each case replays seeded
episodes with KSP-FF, CSPF-PE and random-valid under the ``storm`` family (and one CSPF-PE
episode under stress events: cuts, restorations, pre-emption at load 1.5) and compares:

- the actions and the exact sum of rewards;
- a chain of per-step digests of the reward (its exact bits), the ``info`` dict, the pools
  (per link, slice and priority), failures, trust, counters, emergency windows and the set
  of live flow ids, checkpointed every :data:`EVERY` steps, so a mismatch names the window
  where it first appears; the whole flow table is hashed at each checkpoint;
- a chain of digests of every observation array (dtype, shape and bytes);
- the episode's metrics (:class:`~pcnalloc.evaluate.metrics.MetricsRecorder`), exactly.

Regenerate the reference only from a tree whose simulator is the reference one:
``python tests/envs/test_sim_parity.py --write`` (all cases, slow ones included). After an
intended change of the observation layout alone, ``--write-obs`` rewrites only the
observation digests and refuses when anything else differs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.config import NetworkConfig, env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate.metrics import MetricsRecorder

DATA = Path(__file__).parent / "data" / "sim_parity.json"
EVERY = 25
"""Steps between checkpoints of the digest chains."""

STRESS = {
    "faults_per_hour": 300.0,
    "emergency_minutes": 1.0,
    "burst_rate_per_s": 2.0,
    "fiber_cuts_per_hour": 600.0,
    "repair_minutes": 1.0,
}
CASES: dict[str, dict[str, Any]] = {
    "case30-storm-ksp-ff": {"case": "case30", "policy": "ksp-ff", "seed": 3, "steps": 400},
    "case30-storm-cspf-pe": {"case": "case30", "policy": "cspf-pe", "seed": 4, "steps": 400},
    "case30-storm-random": {"case": "case30", "policy": "random", "seed": 5, "steps": 400},
    "case30-stress-cspf-pe": {
        "case": "case30",
        "policy": "cspf-pe",
        "seed": 6,
        "steps": 400,
        "stress": True,
    },
    "case30-storm-ksp-ff-full": {
        "case": "case30",
        "policy": "ksp-ff",
        "seed": 7,
        "steps": 150,
        "observation": "full",
    },
    "case118-storm-ksp-ff": {"case": "case118", "policy": "ksp-ff", "seed": 3, "steps": 300},
    "case118-storm-cspf-pe": {"case": "case118", "policy": "cspf-pe", "seed": 4, "steps": 300},
    "case118-storm-random": {"case": "case118", "policy": "random", "seed": 5, "steps": 300},
}
SLOW = {k for k in CASES if k.startswith("case118")}


def _h(*parts: bytes) -> bytes:
    m = hashlib.sha256()
    for p in parts:
        m.update(p)
    return m.digest()


def _arrays(obj: Any, prefix: str = "") -> list[tuple[str, np.ndarray]]:
    """Every array of an observation (nested dicts in key order) with its path."""
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _arrays(obj[k], f"{prefix}/{k}")]
    return [(prefix, np.asarray(obj))]


def obs_digest(obs: Any) -> bytes:
    parts = []
    for name, a in _arrays(obs):
        a = np.ascontiguousarray(a)
        parts += [name.encode(), str(a.dtype).encode(), repr(a.shape).encode(), a.tobytes()]
    return _h(*parts)


def _plain(x: Any) -> Any:
    if isinstance(x, float):
        return x.hex()
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, np.generic):
        return _plain(x.item())
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    return repr(x)


def state_digest(env: PowerCommEnv) -> bytes:
    st = env.state
    ids = np.array(sorted(st.flows), dtype=np.int64)
    return _h(
        st.used_ESP1.tobytes(),
        st.used_ES1.tobytes(),
        st.failed_E1.tobytes(),
        st.trust_N1.tobytes(),
        env.emergency_R.tobytes(),
        json.dumps(env.counters, sort_keys=True).encode(),
        ids.tobytes(),
        np.float64(env.now).tobytes(),
    )


def flows_digest(env: PowerCommEnv) -> bytes:
    rows = []
    for fid in sorted(env.state.flows):
        f = env.state.flows[fid]
        rows.append(
            (
                f.id,
                f.cls,
                f.slice,
                f.priority,
                f.kbps,
                np.asarray(f.links).tolist(),
                np.asarray(f.backup_links).tolist(),
                float(f.end_s).hex(),
                f.src,
                f.dst,
                float(f.value).hex(),
                bool(f.counted),
                float(f.full_holding_s).hex(),
            )
        )
    return _h(json.dumps(rows).encode())


def make_env(spec: dict[str, Any], policy: Any) -> PowerCommEnv:
    """The case's env on the network built as the tests' ``case_network`` fixture builds it."""
    from pcnalloc.network.builder import from_pandapower, load_pandapower

    case = spec["case"]
    net = _NETS.get(case)
    if net is None:
        net = _NETS[case] = from_pandapower(
            load_pandapower(case), name=case, config=NetworkConfig()
        )
    traffic: dict[str, Any] = (
        {"load": 1.5, "events": STRESS} if spec.get("stress") else {"scenario": "storm"}
    )
    cfg = env_config(network={"case": case}, traffic=traffic, **policy.env_overrides)
    return PowerCommEnv(cfg, observation=spec.get("observation", policy.observation), network=net)


_NETS: dict[str, Any] = {}


def record(spec: dict[str, Any]) -> dict[str, Any]:
    """Play one seeded episode and return its trace (see the module docstring)."""
    pol = make_policy(spec["policy"])
    env = make_env(spec, pol)
    seed = spec["seed"]
    pol.reset(seed)
    obs, info = env.reset(seed=seed)
    rec = MetricsRecorder(env)
    chain, ochain = _h(b"trace"), _h(b"obs", obs_digest(obs))
    actions: list[int] = []
    trace: list[str] = []
    otrace: list[str] = []
    total = 0.0
    for t in range(spec["steps"]):
        a = int(pol.act(obs))
        obs, reward, term, trunc, info = env.step(a)
        rec.record(info, reward)
        actions.append(a)
        total += reward
        info_s = json.dumps(_plain(info), sort_keys=True).encode()
        chain = _h(
            chain,
            np.int64(a).tobytes(),
            np.float64(reward).tobytes(),
            bytes([term, trunc]),
            info_s,
            state_digest(env),
        )
        ochain = _h(ochain, obs_digest(obs))
        if (t + 1) % EVERY == 0 or t + 1 == spec["steps"]:
            chain = _h(chain, flows_digest(env))
            trace.append(chain.hex()[:16])
            otrace.append(ochain.hex()[:16])
    metrics = _plain(rec.result())
    return {
        "actions": actions,
        "reward_sum": total.hex(),
        "trace": trace,
        "obs": otrace,
        "metrics": metrics,
    }


def _load() -> dict[str, Any]:
    return json.loads(DATA.read_text())


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in CASES]
)
def test_trajectory_matches_reference(name: str) -> None:
    ref = _load()["cases"][name]
    got = record(CASES[name])
    assert got["actions"] == ref["actions"], "the actions differ"
    for i, (g, r) in enumerate(zip(got["trace"], ref["trace"], strict=True)):
        lo = i * EVERY
        assert g == r, f"{name}: transitions differ first within steps {lo}..{lo + EVERY - 1}"
    assert got["reward_sum"] == ref["reward_sum"]
    assert got["metrics"] == ref["metrics"]
    for i, (g, r) in enumerate(zip(got["obs"], ref["obs"], strict=True)):
        lo = i * EVERY
        assert g == r, f"{name}: observations differ first within steps {lo}..{lo + EVERY - 1}"


def test_parity_check_catches_a_changed_trajectory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted fault: one extra unit of used capacity after an admission is caught."""
    import pcnalloc.envs.state as state_mod

    name = "case30-storm-ksp-ff"
    ref = _load()["cases"][name]
    spec = dict(CASES[name], steps=2 * EVERY)
    admit = state_mod.NetworkState.admit
    n = {"calls": 0}

    def leaky(self: Any, **kw: Any) -> Any:
        flow = admit(self, **kw)
        n["calls"] += 1
        if n["calls"] == 5:  # an early admission of the episode
            self.used_ES1[int(kw["links"][0]), kw["slice_"]] += 1
        return flow

    monkeypatch.setattr(state_mod.NetworkState, "admit", leaky)
    got = record(spec)
    assert n["calls"] > 5
    assert got["trace"] != ref["trace"][: len(got["trace"])]


def test_reference_covers_the_event_paths() -> None:
    """The recorded episodes include pre-emptions, cuts and rejections (they test them)."""
    cases = _load()["cases"]
    m = cases["case30-stress-cspf-pe"]["metrics"]
    assert m["preempted_flows"] > 0 and m["fiber_cuts"] > 0 and m["interrupted_flows"] > 0
    assert cases["case30-storm-ksp-ff"]["metrics"]["faults"] > 0
    assert any(
        c["metrics"]["outcomes"]["rejected"] + c["metrics"]["outcomes"]["blocked"]
        for c in cases.values()
    )


def _write(only_obs: bool) -> None:
    old = _load()["cases"] if DATA.exists() else {}
    out: dict[str, Any] = {}
    for name, spec in CASES.items():
        got = record(spec)
        if only_obs:
            ref = old[name]
            same = {k: got[k] == ref[k] for k in ("actions", "reward_sum", "trace", "metrics")}
            if not all(same.values()):
                raise SystemExit(f"{name}: trajectories differ ({same}); not rewriting")
            ref["obs"] = got["obs"]
            got = ref
        out[name] = got
        print(name, got["metrics"]["outcomes"], file=sys.stderr)
    DATA.parent.mkdir(parents=True, exist_ok=True)
    tmp = DATA.with_suffix(".tmp")
    tmp.write_text(json.dumps({"every": EVERY, "cases": out}, indent=0, sort_keys=True) + "\n")
    tmp.replace(DATA)


if __name__ == "__main__":
    if sys.argv[1:] not in (["--write"], ["--write-obs"]):
        raise SystemExit("usage: python tests/envs/test_sim_parity.py --write | --write-obs")
    _write(only_obs=sys.argv[1] == "--write-obs")
