"""The lazy per-action fields equal the eagerly built ones (values and dtypes)."""

from __future__ import annotations

import numpy as np
import pytest

from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.features import FIELDS, ActionFields


def _evaluations(make_config, case_network, n: int) -> list:
    env = PowerCommEnv(make_config("case30", events="stress"), network=case_network("case30"))
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(n):
        out.append(env.current_evaluation)
        valid = np.flatnonzero(obs["action_mask"])
        obs, *_ = env.step(int(valid[len(out) % valid.size]))
    return out


def test_lazy_fields_equal_eager(make_config, case_network) -> None:
    for ev in _evaluations(make_config, case_network, 60):
        lazy, eager = ev.fields, ev.fields_eager()
        assert isinstance(lazy, ActionFields)
        assert list(lazy) == list(eager) == list(FIELDS) and len(lazy) == len(FIELDS)
        for name in reversed(FIELDS):  # derived fields first: they pull their inputs
            assert lazy[name].dtype == eager[name].dtype, name
            np.testing.assert_array_equal(lazy[name], eager[name], err_msg=name)
        assert lazy["fits"] is ev.fields["fits"]  # built once, then cached


def test_planted_field_fault_is_caught(make_config, case_network) -> None:
    ev = _evaluations(make_config, case_network, 1)[0]
    lazy, eager = ev.fields, ev.fields_eager()
    lazy._got["min_trust"] = lazy["min_trust"][::-1].copy() + 0.5  # a wrong array
    with pytest.raises(AssertionError):
        np.testing.assert_array_equal(lazy["min_trust"], eager["min_trust"])
    with pytest.raises(KeyError):
        lazy["no_such_field"]
