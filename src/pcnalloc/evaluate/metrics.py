"""The one metrics schema every policy reports (DESIGN §10)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pcnalloc.config import SLICES
from pcnalloc.envs.power_comm import OUTCOMES, PowerCommEnv
from pcnalloc.evaluate.checker import SafetyChecker

METRIC_KEYS = (
    "requests",
    "outcomes",
    "weighted_value_ratio",
    "blocking_probability",
    "blocking_priority_le1",
    "blocking_per_class",
    "carried_utilisation_per_slice",
    "mbps_hops_per_carried_mbps",
    "max_link_utilisation",
    "p95_link_utilisation",
    "jain_fairness_link_utilisation",
    "mean_latency_over_bound",
    "executed_hard_violations",
    "executed_violations_by_kind",
    "intercepted",
    "preempted_flows",
    "preempted_value",
    "interrupted_flows",
    "protection_switchovers",
    "faults",
    "fiber_cuts",
    "model_bytes",
    "total_reward",
)


_P95_BATCH = 256
"""Utilisation samples whose 95th percentile is computed in one call."""


class MetricsRecorder:
    """Accumulates per-decision ``info`` dicts and periodic utilisation samples.

    The weighted value ratio is (Σ earned − Σ value of flows the policy pre-empted) / Σ offered,
    where a request offers ``value × f`` and an admission earns ``value × grant × f`` with
    ``f`` the share of its service still to run (1 for a fresh request; remaining / original
    holding time for a restoration after a cut or a pre-emption, DESIGN §4). A pre-empted
    flow's value (what it earned) is lost whether it was admitted in the episode or was
    already present at its start: the policy's decision took its service away; its
    restoration can earn back only the remaining share, never the full value again.

    ``executed_hard_violations`` (and its split ``executed_violations_by_kind``) come from a
    :class:`~pcnalloc.evaluate.checker.SafetyChecker` that re-derives capacity, isolation,
    latency, trust, 1+1 and grant from the raw state after every recorded step, never from
    the mask or evaluation that chose the action. Build the recorder right after
    ``env.reset()`` and record every step.

    Args:
        env: the (unwrapped) environment being played.
        sample_every: decisions between utilisation samples (deterministic).
        checker: the safety checker to use (default: a new one on ``env``).
    """

    def __init__(
        self, env: PowerCommEnv, sample_every: int = 10, checker: SafetyChecker | None = None
    ) -> None:
        cat = env.catalog
        self.env = env
        self.checker = checker if checker is not None else SafetyChecker(env)
        self.sample_every = sample_every
        C = cat.n_classes
        self.names = cat.names
        self.crit = cat.priority_C <= 1
        self.offered_C = np.zeros(C, dtype=np.int64)
        self.accepted_C = np.zeros(C, dtype=np.int64)
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.value_offered = 0.0
        self.value_carried = 0.0
        self.value_preempted = 0.0
        self.mbps = 0.0
        self.mbps_hops = 0.0
        self.lat_ratio: list[float] = []
        self.preempted = 0
        self.reward = 0.0
        self.samples: list[tuple[float, float, float, np.ndarray]] = []
        """Per utilisation sample: (max, p95, Jain index, carried per slice). The p95 entries
        of samples still in :attr:`_pending` are NaN until :meth:`_flush_p95` fills them."""
        E = env.net.n_links
        self._pending = np.empty((_P95_BATCH, E))
        self._n_pending = 0
        self.n = 0

    def record(self, info: dict[str, Any], reward: float) -> None:
        """Account one step's ``info`` and reward, and run the safety checker on it."""
        self.checker.after_step(info)
        c = info["cls"]
        self.n += 1
        self.offered_C[c] += 1
        self.outcomes[info["outcome"]] += 1
        self.value_offered += info.get("offered_value", info["value"])
        self.reward += reward
        if info["outcome"] == "accepted":
            self.accepted_C[c] += 1
            self.value_carried += info.get("earned_value", info["value"] * info["grant"])
            mb = info["kbps"] / 1000.0
            self.mbps += mb
            self.mbps_hops += mb * info["hops"]
            self.lat_ratio.append(info["latency_ms"] / info["bound_ms"])
            self.value_preempted += info["preempted_value"]
            self.preempted += info["preempted"]
        if self.n % self.sample_every == 0:
            self.sample()

    def sample(self) -> None:
        st = self.env.state
        u_ES = st.utilisation_ES()
        u_E = u_ES.max(axis=1)
        sq = float((u_E**2).sum())
        jain = float(u_E.sum() ** 2 / (u_E.size * sq)) if sq > 0 else 1.0
        carried = st.used_ES1[:-1].sum(axis=0) / st.cap_ES1[:-1].sum(axis=0)
        # The 95th percentile is taken later for a batch of samples at once (one
        # np.percentile along rows gives each row's value exactly as one call per sample did).
        self._pending[self._n_pending] = u_E
        self._n_pending += 1
        self.samples.append((float(u_E.max()), float("nan"), jain, carried))
        if self._n_pending == _P95_BATCH:
            self._flush_p95()

    def _flush_p95(self) -> None:
        """Fill the p95 of the last :attr:`_n_pending` samples."""
        m = self._n_pending
        if m == 0:
            return
        p95 = np.percentile(self._pending[:m], 95, axis=1).tolist()
        first = len(self.samples) - m
        for i, q in enumerate(p95):
            mx, _, jain, carried = self.samples[first + i]
            self.samples[first + i] = (mx, q, jain, carried)
        self._n_pending = 0

    def result(self, model_bytes: int = 0) -> dict[str, Any]:
        if not self.samples:
            self.sample()
        self._flush_p95()
        off = np.maximum(self.offered_C, 1)
        block_C = 1.0 - self.accepted_C / off
        crit_off = int(self.offered_C[self.crit].sum())
        crit_acc = int(self.accepted_C[self.crit].sum())
        s = np.array([x[:3] for x in self.samples])
        carried = np.mean([x[3] for x in self.samples], axis=0)
        c = self.env.counters
        self.checker.finish()
        safety = self.checker.summary()
        r = lambda x: round(float(x), 6)  # noqa: E731 - rounding keeps JSON stable and short
        return {
            "requests": self.n,
            "outcomes": dict(self.outcomes),
            "weighted_value_ratio": r(
                (self.value_carried - self.value_preempted) / max(self.value_offered, 1e-12)
            ),
            "blocking_probability": r(1.0 - self.outcomes["accepted"] / max(self.n, 1)),
            "blocking_priority_le1": r(1.0 - crit_acc / crit_off) if crit_off else 0.0,
            "blocking_per_class": {
                n: r(b) for n, b, o in zip(self.names, block_C, self.offered_C, strict=True) if o
            },
            "offered_per_class": {
                n: int(o) for n, o in zip(self.names, self.offered_C, strict=True) if o
            },
            "carried_utilisation_per_slice": {
                k: r(v) for k, v in zip(SLICES, carried, strict=True)
            },
            "mbps_hops_per_carried_mbps": r(self.mbps_hops / self.mbps) if self.mbps else 0.0,
            "max_link_utilisation": r(s[:, 0].mean()),
            "p95_link_utilisation": r(s[:, 1].mean()),
            "jain_fairness_link_utilisation": r(s[:, 2].mean()),
            "mean_latency_over_bound": r(np.mean(self.lat_ratio)) if self.lat_ratio else 0.0,
            "executed_hard_violations": safety["executed_hard_violations"],
            "executed_violations_by_kind": safety["executed_violations_by_kind"],
            "safety_checks": {k: safety[k] for k in ("checked_admissions", "unchecked_admissions")},
            "intercepted": int(c["refused"]),
            "preempted_flows": self.preempted,
            "preempted_value": r(self.value_preempted),
            "interrupted_flows": int(c["interrupted"]),
            "protection_switchovers": int(c["protection_switchovers"]),
            "faults": int(c["faults"]),
            "fiber_cuts": int(c["fiber_cuts"]),
            "model_bytes": int(model_bytes),
            "total_reward": r(self.reward),
        }
