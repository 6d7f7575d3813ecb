"""Semi-Markov discount γ^(Δt/τ) and n-step composition on hand-built transitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcnalloc.teacher import ReplayBuffer, double_dqn_target


def _obs(i: float) -> dict:
    return {
        "graph": {
            "node_feats": np.full((2, 7), i, np.float32),
            "link_feats": np.full((1, 10), i, np.float32),
            "edge_index": np.array([[0], [1]]),
        },
        "history": np.zeros((2, 3), np.float32),
        "request": np.full(4, i, np.float32),
        "candidates": np.zeros((3, 5), np.float32),
        "action_mask": np.ones(3, np.int8),
    }


def _episode(buf: ReplayBuffer, rewards, dts, start: float = 0.0) -> None:
    slot = buf.add_obs(_obs(start), continues=False)
    for j, (r, dt) in enumerate(zip(rewards, dts, strict=True)):
        buf.set_step(slot, 0, r, dt)
        slot = buf.add_obs(_obs(start + j + 1), continues=True)


def _sample_from(buf: ReplayBuffer, slot: int, **kw):
    class Fixed:
        def integers(self, hi, size):
            valid = np.flatnonzero(buf.has_next_C)
            return np.full(size, int(np.flatnonzero(valid == slot)[0]))

    return buf.sample_n(2, Fixed(), **kw)


def test_one_step_time_target_is_r_plus_gamma_pow_dt_over_tau():
    buf = ReplayBuffer(10, _obs(0))
    _episode(buf, [2.0], [300.0])
    _, _, G, D, nxt = _sample_from(buf, 0, n_step=1, gamma=0.9, tau_s=600.0)
    assert G[0] == pytest.approx(2.0)
    assert D[0] == pytest.approx(0.9**0.5)
    assert float(nxt.request_BR[0, 0]) == 1.0  # the next observation
    q_next = torch.tensor([[1.0, 4.0, 2.0]] * 2)
    y = double_dqn_target(
        torch.from_numpy(G),
        q_next,
        q_next * 10,
        torch.ones(2, 3, dtype=torch.bool),
        torch.from_numpy(D),
    )
    assert float(y[0]) == pytest.approx(2.0 + 0.9**0.5 * 40.0, rel=1e-6)


def test_n_step_composes_time_discount_and_stops_at_episode_end():
    buf = ReplayBuffer(20, _obs(0))
    _episode(buf, [1.0, 2.0, 4.0], [60.0, 120.0, 600.0])
    _episode(buf, [8.0, 8.0], [1.0, 1.0], start=10.0)
    g, tau = 0.9, 600.0
    d = [g ** (60 / tau), g ** (120 / tau), g ** (600 / tau)]
    _, _, G, D, nxt = _sample_from(buf, 0, n_step=3, gamma=g, tau_s=tau)
    assert G[0] == pytest.approx(1.0 + d[0] * 2.0 + d[0] * d[1] * 4.0, rel=1e-6)
    assert D[0] == pytest.approx(d[0] * d[1] * d[2], rel=1e-6)
    assert float(nxt.request_BR[0, 0]) == 3.0
    # From the second step only two steps remain in the episode: the return is cut there
    # and bootstraps from the last observation of that episode, never from the next one.
    _, _, G, D, nxt = _sample_from(buf, 1, n_step=5, gamma=g, tau_s=tau)
    assert G[0] == pytest.approx(2.0 + d[1] * 4.0, rel=1e-6)
    assert D[0] == pytest.approx(d[1] * d[2], rel=1e-6)
    assert float(nxt.request_BR[0, 0]) == 3.0
    # Per-decision discount ignores Δt (the ablation).
    _, _, G, D, _ = _sample_from(buf, 0, n_step=2, gamma=g, tau_s=None)
    assert G[0] == pytest.approx(1.0 + g * 2.0) and D[0] == pytest.approx(g * g)


def test_planted_fault_per_decision_discount_differs_from_time_discount():
    """A check that can fail: a long gap discounts far more in time than per decision."""
    buf = ReplayBuffer(10, _obs(0))
    _episode(buf, [0.0], [6000.0])
    _, _, _, D_time, _ = _sample_from(buf, 0, n_step=1, gamma=0.9, tau_s=600.0)
    _, _, _, D_dec, _ = _sample_from(buf, 0, n_step=1, gamma=0.9, tau_s=None)
    assert D_time[0] == pytest.approx(0.9**10, rel=1e-6) and D_dec[0] == pytest.approx(0.9)
