"""Bayesian site reputation (BC-DRL eqs. (1)–(5)) against hand-computed values, and the
seeded malicious-site scenario."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pcnalloc.distributed.scenarios import TrustScenario, run_trust_scenario
from pcnalloc.distributed.trust import (
    ReputationTracker,
    TrustConfig,
    committee_mask,
    dos_inference,
)
from pcnalloc.errors import ConfigError

CFG = TrustConfig(
    prior_served=0.8,
    p_positive_if_served=0.9,
    p_positive_if_denied=0.1,
    inference_weight=0.5,
    history_discount=0.5,
)


def test_inference_matches_bayes_by_hand() -> None:
    rho = dos_inference(np.array([0, 1, 0, 2]), np.array([1, 0, 2, 1]), CFG)
    # one negative: 0.8·0.1 / (0.8·0.1 + 0.2·0.9) = 0.08 / 0.26
    # one positive: 0.8·0.9 / (0.8·0.9 + 0.2·0.1) = 0.72 / 0.74
    # two negatives: 0.8·0.01 / (0.008 + 0.2·0.81) = 0.008 / 0.17
    # 2 pos + 1 neg: 0.8·0.081 / (0.0648 + 0.2·0.009) = 0.0648 / 0.0666
    assert rho == pytest.approx([0.08 / 0.26, 0.72 / 0.74, 0.008 / 0.17, 0.0648 / 0.0666])
    assert dos_inference(np.array([0]), np.array([0]), CFG) == pytest.approx([0.8])
    # thousands of feedbacks do not underflow
    assert dos_inference(np.array([0, 3000]), np.array([3000, 0]), CFG) == pytest.approx([0, 1])


def test_three_slot_sequence_by_hand() -> None:
    tr = ReputationTracker(3, CFG)
    # slot 1: site 0 one negative, site 1 one positive, site 2 nothing. History H1 = R0 = 1.
    r1 = tr.update(np.array([0, 1, 0]), np.array([1, 0, 0]))
    s0_r1 = 0.5 * (0.08 / 0.26) + 0.5 * 1.0  # 0.653846
    s1_r1 = 0.5 * (0.72 / 0.74) + 0.5 * 1.0  # 0.986486
    assert r1 == pytest.approx([s0_r1, s1_r1, 1.0])
    # slot 2: site 0 two negatives; H2 = (0.5·R0 + R1) / (0.5 + 1)
    r2 = tr.update(np.array([0, 0, 0]), np.array([2, 0, 0]))
    h2 = (0.5 * 1.0 + s0_r1) / 1.5  # 0.769231
    s0_r2 = 0.5 * (0.008 / 0.17) + 0.5 * h2  # 0.408145
    assert r2[0] == pytest.approx(s0_r2)
    assert r2[0] == pytest.approx(0.408145, abs=1e-6)
    assert r2[1:] == pytest.approx([s1_r1, 1.0])  # no feedback: unchanged (eq. (2))
    # slot 3: no feedback anywhere: nothing moves
    r3 = tr.update(np.zeros(3, dtype=int), np.zeros(3, dtype=int))
    assert r3 == pytest.approx([s0_r2, s1_r1, 1.0])
    # slot 4: site 0 one positive; H4 = Σ 0.5^(3−τ)·R_τ / Σ 0.5^(3−τ) over τ = 0..3
    r4 = tr.update(np.array([1, 0, 0]), np.array([0, 0, 0]))
    h4 = (0.125 * 1.0 + 0.25 * s0_r1 + 0.5 * s0_r2 + 1.0 * s0_r2) / (0.125 + 0.25 + 0.5 + 1.0)
    assert r4[0] == pytest.approx(0.5 * (0.72 / 0.74) + 0.5 * h4)
    assert tr.slot == 4


def test_committee_above_mean_times_coefficient() -> None:
    rep = np.array([1.0, 0.9, 0.2, 0.7])  # mean 0.7
    assert committee_mask(rep, 1.0).tolist() == [True, True, False, False]
    assert committee_mask(rep, 0.5).tolist() == [True, True, False, True]
    tr = ReputationTracker(4, CFG)
    tr.reputation_N = rep.copy()
    assert tr.committee_threshold() == pytest.approx(0.7)


def test_config_and_shape_errors() -> None:
    with pytest.raises(ValueError, match="must exceed"):
        TrustConfig(p_positive_if_served=0.3, p_positive_if_denied=0.6)
    tr = ReputationTracker(3, CFG)
    with pytest.raises(ConfigError, match=r"shape \(3,\)"):
        tr.update(np.zeros(2), np.zeros(3))
    with pytest.raises(ConfigError, match="n_sites"):
        ReputationTracker(0)


def test_malicious_site_isolated_within_reported_slots(tiny_graph_file: Path) -> None:
    sc = TrustScenario(
        case=str(tiny_graph_file),
        malicious_sites=["B"],
        drop_share=0.9,
        malicious_feedback_share=0.1,
        requests_per_slot=40,
        slots=16,
        trust=TrustConfig(inference_weight=0.5, history_discount=0.5),
        seed=3,
    )
    res = run_trust_scenario(sc)
    slot = res["isolation_slot"]["B"]
    rep_B = np.array(res["reputation_TN"])[:, res["site_names"].index("B")]
    assert slot is not None and 1 <= slot <= 12
    assert rep_B[slot] < res["threshold"] <= rep_B[slot - 1]
    assert rep_B[-1] < res["threshold"]
    assert res["false_isolation_rate"] == 0.0
    assert "B" not in res["committee_final"]
    assert res["critical_via_malicious"]["after_isolation"] == 0  # the env's trust rule
    assert run_trust_scenario(sc)["reputation_TN"] == res["reputation_TN"]  # seeded
