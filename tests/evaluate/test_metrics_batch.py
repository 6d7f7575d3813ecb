"""Utilisation samples: the batched 95th percentile equals one np.percentile per sample.

:class:`~pcnalloc.evaluate.metrics.MetricsRecorder` takes the p95 of a batch of samples in
one call instead of once per sample; the metrics must not move by a bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import pcnalloc.evaluate.metrics as metrics_mod
from pcnalloc.baselines import make_policy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate.metrics import MetricsRecorder


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 41, 186, 411])
def test_rowwise_percentile_is_exactly_the_per_row_one(n: int) -> None:
    rng = np.random.default_rng(n)
    rows = rng.random((300, n))
    rows[::3] = np.round(rows[::3], 1)  # ties
    rows[1::7] = 0.0
    rows[2::11, : n // 2] = 1.0
    batched = np.percentile(rows, 95, axis=1).tolist()
    single = [float(np.percentile(r, 95)) for r in rows]
    assert [x.hex() for x in batched] == [x.hex() for x in single]


class _PerSample(MetricsRecorder):
    """The recorder as first written: np.percentile in every sample."""

    def sample(self) -> None:
        st = self.env.state
        u_E = st.utilisation_ES().max(axis=1)
        sq = float((u_E**2).sum())
        jain = float(u_E.sum() ** 2 / (u_E.size * sq)) if sq > 0 else 1.0
        carried = st.used_ES1[:-1].sum(axis=0) / st.cap_ES1[:-1].sum(axis=0)
        self.samples.append((float(u_E.max()), float(np.percentile(u_E, 95)), jain, carried))


def _play(env: PowerCommEnv, recorder: type, steps: int, **kw: Any) -> dict[str, Any]:
    pol = make_policy("ksp-ff")
    obs, _ = env.reset(seed=11)
    rec = recorder(env, **kw)
    for _ in range(steps):
        obs, r, _, _, info = env.step(pol.act(obs))
        rec.record(info, r)
    out = rec.result()
    out["_p95_raw"] = [s[1].hex() for s in rec.samples]
    return out


@pytest.fixture
def env(make_config, small_pool_graph_file) -> PowerCommEnv:
    cfg = make_config(small_pool_graph_file, events="stress", traffic={"load": 1.2})
    return PowerCommEnv(cfg, observation="compact")


def test_recorder_metrics_equal_the_per_sample_recorder(env, monkeypatch) -> None:
    monkeypatch.setattr(metrics_mod, "_P95_BATCH", 16)  # several full batches and a rest
    steps = 16 * 3 + 5
    new = _play(env, MetricsRecorder, steps, sample_every=1)
    ref = _play(env, _PerSample, steps, sample_every=1)
    assert len(new["_p95_raw"]) == steps
    assert new == ref


def test_a_lost_batch_is_caught(env, monkeypatch) -> None:
    """Planted fault: a flush that forgets the pending rows leaves NaN p95 and is caught."""
    monkeypatch.setattr(metrics_mod, "_P95_BATCH", 16)

    def forget(self: MetricsRecorder) -> None:
        self._n_pending = 0

    monkeypatch.setattr(MetricsRecorder, "_flush_p95", forget)
    new = _play(env, MetricsRecorder, 20, sample_every=1)
    ref = _play(env, _PerSample, 20, sample_every=1)
    assert new != ref
