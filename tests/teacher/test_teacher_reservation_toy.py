"""Single-link trunk-reservation toy: the semi-Markov DQN learns to keep capacity free.

One link of C unit circuits, two Poisson classes (high value 10, low value 1), exponential
holding (mean 1 time unit); a decision at each arrival: admit (if a circuit is free) or
reject. With heavy low-value traffic the optimal policy rejects the low class near capacity
(trunk reservation; Marbach, Mihatsch & Tsitsiklis 2000) while always-admit fills the link
with low-value flows. The learner is the teacher's own code — :class:`ReplayBuffer`
(Δt stored, :meth:`~ReplayBuffer.sample_n` composing γ^(Δt/τ)) and
:func:`double_dqn_target` — with a linear Q over one-hot (occupancy, class) features.
"""

from __future__ import annotations

import numpy as np
import torch

from pcnalloc.nn import mask_q
from pcnalloc.teacher import ReplayBuffer, double_dqn_target

C, RATE_HI, RATE_LO, VALUE = 5, 1.0, 6.0, (10.0, 1.0)
ACCEPT, REJECT = 0, 1


class LinkToy:
    """Minimal SMDP: state (occupancy, arriving class); ``step`` returns reward and Δt."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.cls = self._draw_class()

    def _draw_class(self) -> int:
        return int(self.rng.random() >= RATE_HI / (RATE_HI + RATE_LO))  # 0 = high, 1 = low

    def features(self) -> np.ndarray:
        f = np.zeros(2 * (C + 1), np.float32)
        f[self.cls * (C + 1) + self.n] = 1.0
        return f

    def mask(self) -> np.ndarray:
        return np.array([self.n < C, True], np.int8)

    def step(self, action: int) -> tuple[float, float]:
        reward = 0.0
        if action == ACCEPT and self.n < C:
            self.n += 1
            reward = VALUE[self.cls]
        dt = float(self.rng.exponential(1.0 / (RATE_HI + RATE_LO)))
        self.n -= int(self.rng.binomial(self.n, 1.0 - np.exp(-dt)))
        self.cls = self._draw_class()
        return reward, dt


def _obs(env: LinkToy) -> dict:
    return {
        "graph": {
            "node_feats": np.zeros((2, 1), np.float32),
            "link_feats": np.full((1, 1), env.n / C, np.float32),
            "edge_index": np.array([[0], [1]]),
        },
        "history": np.zeros((1, 1), np.float32),
        "request": env.features(),
        "candidates": np.zeros((2, 1), np.float32),
        "action_mask": env.mask(),
    }


def _collect(n: int, seed: int) -> ReplayBuffer:
    env = LinkToy(seed)
    rng = np.random.default_rng(seed + 1)
    buf = ReplayBuffer(n + 1, _obs(env))
    slot = buf.add_obs(_obs(env), continues=False)
    for _ in range(n):
        valid = np.flatnonzero(env.mask())
        a = int(valid[rng.integers(valid.size)])
        r, dt = env.step(a)
        buf.set_step(slot, a, r, dt)
        slot = buf.add_obs(_obs(env), continues=True)
    return buf


def _train(buf: ReplayBuffer, gamma: float, tau_s: float | None, seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    q = torch.nn.Linear(2 * (C + 1), 2, bias=False)
    torch.nn.init.zeros_(q.weight)
    target = torch.nn.Linear(2 * (C + 1), 2, bias=False)
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=0.05)
    rng = np.random.default_rng(seed)
    for it in range(1500):
        o, a, G, D, o2 = buf.sample_n(256, rng, n_step=1, gamma=gamma, tau_s=tau_s)
        with torch.no_grad():
            y = double_dqn_target(
                torch.from_numpy(G),
                q(o2.request_BR),
                target(o2.request_BR),
                o2.mask_BA,
                torch.from_numpy(D),
            )
        pred = q(o.request_BR).gather(1, torch.from_numpy(a)[:, None]).squeeze(1)
        loss = torch.nn.functional.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 50 == 49:
            target.load_state_dict(q.state_dict())
    return q


def _greedy(q: torch.nn.Linear, env: LinkToy) -> int:
    with torch.no_grad():
        scores = q(torch.from_numpy(env.features())[None])
        m = torch.from_numpy(env.mask()).bool()[None]
        return int(mask_q(scores, m).argmax(1)[0])


def _value_rate(policy, seed: int, n: int = 20_000) -> float:
    env = LinkToy(seed)
    total, time = 0.0, 0.0
    for _ in range(n):
        r, dt = env.step(policy(env))
        total, time = total + r, time + dt
    return total / time


def _decisions(q: torch.nn.Linear) -> dict[tuple[int, int], int]:
    env = LinkToy(0)
    out = {}
    for cls in (0, 1):
        for n in range(C):
            env.n, env.cls = n, cls
            out[(cls, n)] = _greedy(q, env)
    return out


def test_time_discounted_dqn_learns_trunk_reservation():
    buf = _collect(20_000, seed=3)
    q = _train(buf, gamma=0.5, tau_s=1.0)  # τ = the mean holding time
    d = _decisions(q)
    assert all(d[(0, n)] == ACCEPT for n in range(C))  # high value: always admitted
    assert d[(1, 0)] == ACCEPT  # low value on an empty link: admitted
    assert d[(1, C - 1)] == REJECT  # low value near capacity: the last circuit is reserved

    def always(env):
        return ACCEPT if env.n < C else REJECT

    learned = _value_rate(lambda env: _greedy(q, env), seed=11)
    admit_all = _value_rate(always, seed=11)
    assert learned > 1.05 * admit_all, (learned, admit_all)


def test_planted_fault_myopic_discount_admits_everything():
    """The check can fail: with a near-zero horizon the learner is greedy and admits all."""
    buf = _collect(20_000, seed=3)
    q = _train(buf, gamma=1e-6, tau_s=1e-3)
    d = _decisions(q)
    assert d[(1, C - 1)] == ACCEPT
