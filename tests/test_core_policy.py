"""The Policy protocol's optional capabilities: declared once, asked through one function."""

from __future__ import annotations

import numpy as np

from pcnalloc.baselines import make_policy
from pcnalloc.core.policy import (
    EnvBound,
    Ordered,
    Policy,
    Scoring,
    bind,
    preference_order_of,
    scores_of,
    summary_of,
)
from pcnalloc.rules.guard import preference_scores


class _Plain:
    name, observation, env_overrides, model_bytes = "plain", "compact", {}, 0

    def reset(self, seed=None):
        return None

    def act(self, obs):
        return 0


class _Bound(_Plain):
    env = None

    def bind_env(self, env):
        self.env = env


class _Scored(_Plain):
    def scores(self, obs):
        return [0.0, 3.0, 1.0]


def test_capabilities_are_found_by_protocol_not_by_name_probing():
    plain, bound, scored = _Plain(), _Bound(), _Scored()
    assert all(isinstance(p, Policy) for p in (plain, bound, scored))
    assert not isinstance(plain, EnvBound) and isinstance(bound, EnvBound)
    bind(plain, "env")  # a no-op, not an AttributeError
    bind(bound, "env")
    assert bound.env == "env"
    assert summary_of(plain) is None and scores_of(plain, {}) is None
    assert isinstance(scored, Scoring)
    assert scores_of(scored, {}).dtype == float


def test_first_fit_exposes_its_order_and_the_guard_ranks_by_it():
    ff = make_policy("cspf-pe:2")
    assert isinstance(ff, Ordered)
    order = preference_order_of(ff)
    n = ff.k_paths * ff.grant_levels + 1
    s = preference_scores(ff, {}, n)
    # the first action tried scores highest, reject lowest
    assert int(np.argmax(s)) == int(order[0]) and int(np.argmin(s)) == n - 1
    # planted: a policy without an order falls back to the default grant-first ranking,
    # which differs from a path-first order
    pf = make_policy("ksp-ff:2")
    pf._order = np.arange(n - 1)  # path-first
    assert not np.array_equal(preference_scores(pf, {}, n), s)
    scored = _Scored()
    assert np.array_equal(preference_scores(scored, {}, 3), [0.0, 3.0, 1.0])


class _Masking(_Plain):
    masked = True


def test_the_rule_layer_turns_a_maskable_policys_own_masking_off(monkeypatch):
    from pcnalloc.baselines import registry
    from pcnalloc.core.policy import Maskable

    monkeypatch.setitem(registry._FACTORIES, "masking-test", lambda **_: _Masking())
    assert isinstance(_Masking(), Maskable) and not isinstance(_Plain(), Maskable)
    guarded = make_policy("masking-test+rules")
    assert guarded.policy.masked is False  # the guard sees (and counts) invalid proposals
    assert make_policy("masking-test").masked is True
