"""Lagrangian (primal-dual) teacher: dual ascent on hand-built numbers, the replay's
cost-augmented rewards, the convergence count, and a constrained toy where the value-only
policy breaks the limit and the primal-dual one meets it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pcnalloc.errors import ConfigError
from pcnalloc.nn import mask_q
from pcnalloc.teacher import double_dqn_target
from pcnalloc.teacher.constrained import (
    LagrangianReplay,
    PIDState,
    constrained_config,
    dual_step,
    episodes_to_converge,
    episodes_to_reach,
    episodes_to_settle,
    pid_step,
)


def test_dual_step_moves_the_multiplier_the_right_way():
    # violated (measured 0.10 > ε 0.02): rises by η·0.08
    assert dual_step(1.0, 0.10, 0.02, 10.0, 50.0) == pytest.approx(1.8)
    # slack (0.0 < 0.02): falls by η·0.02
    assert dual_step(1.0, 0.0, 0.02, 10.0, 50.0) == pytest.approx(0.8)
    # projection onto [0, λ_max]
    assert dual_step(0.1, 0.0, 0.02, 10.0, 50.0) == 0.0
    assert dual_step(49.9, 1.0, 0.02, 10.0, 50.0) == 50.0
    # a hand-built sequence of measured rates around ε = 0.05, η = 20
    lam, seq = 0.0, []
    for m in (0.20, 0.15, 0.05, 0.00, 0.00, 0.10):
        lam = dual_step(lam, m, 0.05, 20.0, 50.0)
        seq.append(round(lam, 6))
    assert seq == [3.0, 5.0, 5.0, 4.0, 3.0, 4.0]


def test_pid_multiplier_rises_when_violated_and_falls_when_slack():
    # hand-built sequence around ε = 0.05: K_P = 10, K_I = 20, K_D = 5, λ_max = 50
    st, seq = PIDState(), []
    for m in (0.20, 0.15, 0.05, 0.00, 0.00, 0.10):
        lam, st = pid_step(st, m, 0.05, kp=10.0, ki=20.0, kd=5.0, lam_max=50.0)
        seq.append(round(lam, 6))
    # K_I·I: 3, 5, 5, 4, 3, 4; K_P·Δ: 1.5, 1, 0, −0.5, −0.5, 0.5; K_D·(rise 0 → 0.10) = 0.5
    assert seq == [4.5, 6.0, 5.0, 3.5, 2.5, 5.0]
    rises = [b > a for a, b in zip([0.0, *seq[:-1]], seq, strict=True)]
    assert rises == [True, True, False, False, False, True]
    # the proportional term answers a violation at once, where the integral alone lags
    warm = PIDState(integral=6.0 / 20.0)  # a warm start at λ = 6 (integral resumes there)
    lam_pi, _ = pid_step(warm, 0.13, 0.08, kp=100.0, ki=20.0, kd=0.0, lam_max=50.0)
    lam_i, _ = pid_step(warm, 0.13, 0.08, kp=0.0, ki=20.0, kd=0.0, lam_max=50.0)
    assert lam_i == pytest.approx(7.0) and lam_pi == pytest.approx(12.0)
    # projection: λ and the integral stay in [0, λ_max] (no wind-up)
    lam, st = pid_step(PIDState(), 0.0, 0.5, kp=10.0, ki=20.0, kd=0.0, lam_max=50.0)
    assert lam == 0.0 and st.integral == 0.0
    lam, st = pid_step(PIDState(integral=2.4), 1.0, 0.0, kp=0.0, ki=20.0, kd=0.0, lam_max=50.0)
    assert lam == 50.0 and st.integral == pytest.approx(2.5)


def test_pid_without_p_and_d_is_plain_dual_ascent():
    lam, st = 0.0, PIDState()
    for m in (0.20, 0.15, 0.05, 0.00, 0.00, 0.10, 0.9, 0.9, 0.9):
        lam_a = dual_step(lam, m, 0.05, 20.0, 10.0)
        lam, st = pid_step(st, m, 0.05, kp=0.0, ki=20.0, kd=0.0, lam_max=10.0)
        assert lam == pytest.approx(lam_a)


def _obs(n: int = 2) -> dict:
    return {
        "graph": {
            "node_feats": np.zeros((2, 1), np.float32),
            "link_feats": np.zeros((1, 1), np.float32),
            "edge_index": np.array([[0], [1]]),
        },
        "history": np.zeros((1, 1), np.float32),
        "request": np.zeros(4, np.float32),
        "candidates": np.zeros((n, 1), np.float32),
        "action_mask": np.ones(n, np.int8),
    }


def test_replay_rewrites_rewards_for_the_current_multiplier():
    buf = LagrangianReplay(10, _obs())
    slots = [buf.add_obs(_obs(), continues=i > 0) for i in range(4)]
    for s, (r, c) in zip(slots[:3], [(1.0, 0.0), (2.0, 1.0), (0.5, 1.0)], strict=True):
        buf.record(s, 0, r, c, 0.0)
    np.testing.assert_allclose(buf.reward_C[slots[:3]], [1.0, 2.0, 0.5])  # λ = 0
    buf.set_multiplier(1.5)
    np.testing.assert_allclose(buf.reward_C[slots[:3]], [1.0, 0.5, -1.0])
    buf.set_multiplier(1.5, reward_weight=0.0)  # blocking only
    np.testing.assert_allclose(buf.reward_C[slots[:3]], [0.0, -1.5, -1.5])
    # new rows are written under the current λ and weight
    buf.record(slots[3], 0, 4.0, 1.0, 0.0)
    assert buf.reward_C[slots[3]] == pytest.approx(-1.5)
    _, _, G, _, _ = buf.sample_n(64, np.random.default_rng(0), n_step=1, gamma=0.9, tau_s=None)
    assert set(np.round(G, 4)) <= {0.0, -1.5}


def test_episodes_to_converge():
    eps = 0.1
    assert episodes_to_converge([0.3, 0.2, 0.05, 0.05, 0.05, 0.05], eps, 1) == 3
    # trailing mean over 2: (0.2+0.05)/2 > 0.1 at episode 3, so it settles at episode 4
    assert episodes_to_converge([0.3, 0.2, 0.05, 0.05, 0.05, 0.05], eps, 2) == 4
    # planted late violation: meeting the limit early does not count
    assert episodes_to_converge([0.0, 0.0, 0.0, 0.5, 0.0, 0.0], eps, 1) == 5
    assert episodes_to_converge([0.0, 0.0, 0.5], eps, 1) is None
    assert episodes_to_converge([], eps, 3) is None
    # a tolerance band around the limit (a primal-dual learner hovers at ε)
    assert episodes_to_converge([0.3, 0.12, 0.09, 0.11, 0.12], eps, 1) is None
    assert episodes_to_converge([0.3, 0.12, 0.09, 0.11, 0.12], eps, 1, tol=0.03) == 2
    assert episodes_to_settle([0.1, 0.5, 1.0, 1.0, 1.0], 1) == 3
    # first passage: the late violation does not undo it
    assert episodes_to_reach([0.3, 0.2, 0.05, 0.5, 0.05], eps, 1) == 3
    assert episodes_to_reach([0.3, 0.2, 0.05, 0.05, 0.5], eps, 2) == 4
    assert episodes_to_reach([0.3, 0.3], eps, 1) is None


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_epsilon_outside_the_open_unit_interval_is_refused(bad):
    with pytest.raises(ConfigError, match="epsilon"):
        constrained_config(epsilon=bad)


# ------------------------------------------------------------------ constrained toy
# One link of C circuits; a rare critical class and a frequent bulk class of the same value;
# admit or reject at each arrival. Admitting all bulk fills the link and blocks critical
# arrivals; meeting a limit on critical blocking needs reservation (reject bulk near full).

C, RATE_CRIT, RATE_BULK = 4, 1.0, 5.0
ACCEPT, REJECT = 0, 1


class Toy:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.crit = self._draw()

    def _draw(self) -> bool:
        return bool(self.rng.random() < RATE_CRIT / (RATE_CRIT + RATE_BULK))

    def features(self) -> np.ndarray:
        f = np.zeros(2 * (C + 1), np.float32)
        f[int(self.crit) * (C + 1) + self.n] = 1.0
        return f

    def mask(self) -> np.ndarray:
        return np.array([self.n < C, True], np.int8)

    def step(self, a: int) -> tuple[float, float, bool]:
        """(reward, cost, was_critical)."""
        crit, r, c = self.crit, 0.0, 0.0
        if a == ACCEPT and self.n < C:
            self.n += 1
            r = 1.0
        elif crit:
            c = 1.0
        dt = float(self.rng.exponential(1.0 / (RATE_CRIT + RATE_BULK)))
        self.n -= int(self.rng.binomial(self.n, 1.0 - np.exp(-dt)))
        self.crit = self._draw()
        return r, c, crit


def _toy_obs(env: Toy) -> dict:
    o = _obs()
    o["request"] = env.features()
    o["action_mask"] = env.mask()
    return o


def _act(q: torch.nn.Linear, env: Toy, eps: float, rng: np.random.Generator) -> int:
    valid = np.flatnonzero(env.mask())
    if rng.random() < eps:
        return int(valid[rng.integers(valid.size)])
    with torch.no_grad():
        s = q(torch.from_numpy(env.features())[None])
        return int(mask_q(s, torch.from_numpy(env.mask()).bool()[None]).argmax(1)[0])


def _primal_dual(epsilon: float, dual: bool, rounds: int = 10, steps: int = 800):
    """Primal-dual on the toy: collect with ε-greedy, dual step on the measured critical
    blocking, rewrite rewards, fit a linear Double-DQN Q; returns (greedy blocking, λ)."""
    torch.manual_seed(0)
    q = torch.nn.Linear(2 * (C + 1), 2, bias=False)
    torch.nn.init.zeros_(q.weight)
    tgt = torch.nn.Linear(2 * (C + 1), 2, bias=False)
    tgt.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    rng = np.random.default_rng(1)
    env = Toy(2)
    buf = LagrangianReplay(rounds * steps + 2, _toy_obs(env))
    slot = buf.add_obs(_toy_obs(env), continues=False)
    lam = 0.0
    for _ in range(rounds):
        blk = off = 0
        for _ in range(steps):
            a = _act(q, env, 0.2, rng)
            r, c, crit = env.step(a)
            blk, off = blk + int(c), off + int(crit)
            buf.record(slot, a, r, c, 0.0)
            slot = buf.add_obs(_toy_obs(env), continues=True)
        if dual:
            lam = dual_step(lam, blk / max(off, 1), epsilon, 10.0, 20.0)
            buf.set_multiplier(lam)
        for it in range(100):
            o, a, G, D, o2 = buf.sample_n(256, rng, n_step=1, gamma=0.9, tau_s=None)
            with torch.no_grad():
                y = double_dqn_target(
                    torch.from_numpy(G),
                    q(o2.request_BR),
                    tgt(o2.request_BR),
                    o2.mask_BA,
                    torch.from_numpy(D),
                )
            pred = q(o.request_BR).gather(1, torch.from_numpy(a)[:, None]).squeeze(1)
            loss = torch.nn.functional.mse_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if it % 50 == 49:
                tgt.load_state_dict(q.state_dict())
    test, trng = Toy(99), np.random.default_rng(3)
    blk = off = 0
    for _ in range(20_000):
        _, c, crit = test.step(_act(q, test, 0.0, trng))
        blk, off = blk + int(c), off + int(crit)
    return blk / off, lam


def test_constraint_is_met_on_a_toy_where_value_only_breaks_it():
    eps = 0.08
    free, lam0 = _primal_dual(eps, dual=False)
    constrained, lam = _primal_dual(eps, dual=True)
    assert lam0 == 0.0 and free > 2 * eps  # value only: the link fills with bulk flows
    assert constrained <= eps + 0.02 and lam > 0  # primal-dual: reservation, limit met
