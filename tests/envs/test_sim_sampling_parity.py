"""The compiled base-arrival draws equal the traffic model's Python draws, value for value.

:func:`pcnalloc.envs.sampling.draw_arrival` must make exactly the draws of
``TrafficModel.endpoints``, ``holding`` and ``next_arrival`` in that order, on the same
generator, so a seed's stream (and trajectory) is unchanged and Python draws after it
continue the same stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.sampling import draw_arrival, make_sampler


def _python_draws(env: PowerCommEnv, rng: np.random.Generator, t: float, c: int) -> tuple:
    tm = env.traffic
    src, dst = tm.endpoints(rng, c)
    h = tm.holding(rng, c)
    nt, nc = tm.next_arrival(rng, t)
    return int(src), int(dst), h, nt, nc


def _compare(env: PowerCommEnv, sampler_of, n: int = 3000, seed: int = 7) -> None:
    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    s = sampler_of(a)
    t, c = 3600.0 * 7.5, 0
    C = env.catalog.n_classes
    for i in range(n):
        c = i % C  # every class, so every endpoint kind
        got = draw_arrival(s, t, c)
        want = _python_draws(env, b, t, c)
        assert got == want, (i, c, got, want)
        assert all(type(x) is type(y) for x, y in zip(got, want, strict=True))
        t = want[3]
    assert a.random() == b.random()  # the same stream continues in Python


@pytest.mark.parametrize("case", ["case14", "case30", "case118"])
def test_compiled_arrival_draws_equal_python(case: str) -> None:
    env = PowerCommEnv(env_config(network={"case": case}), observation="compact")
    _compare(env, lambda rng: make_sampler(rng, env.traffic))


def test_comparison_catches_a_planted_difference() -> None:
    env = PowerCommEnv(env_config(network={"case": "case14"}), observation="compact")

    def skewed(rng: np.random.Generator):
        s = make_sampler(rng, env.traffic)
        s.cc_share = 1.0 - s.cc_share  # the wrong control centre for to_cc classes
        return s

    def short_holding(rng: np.random.Generator):
        s = make_sampler(rng, env.traffic)
        s.holding_C = s.holding_C * 0.5
        return s

    for plant in (skewed, short_holding):
        with pytest.raises(AssertionError):
            _compare(env, plant, n=200)


def test_env_rebuilds_its_sampler_on_a_new_generator() -> None:
    """``reset(seed)`` replaces ``np_random``: the sampler follows it (same episode twice)."""
    env = PowerCommEnv(env_config(network={"case": "case14"}), observation="compact")
    runs = []
    for _ in range(2):
        env.reset(seed=4)
        runs.append([env.step(env.reject_action)[4]["time_s"] for _ in range(50)])
    assert runs[0] == runs[1]
    env.reset(seed=4)
    env.np_random = np.random.default_rng(99)  # replaced by hand: followed too
    env.step(env.reject_action)
    assert env._sampler_rng is env.np_random
