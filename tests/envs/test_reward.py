"""The decision reward as pure functions, on hand-computed numbers (DESIGN §4)."""

from __future__ import annotations

import pytest

from pcnalloc.config import RewardConfig
from pcnalloc.envs.reward import accept_reward, refused_reward, reject_reward

RW = RewardConfig()  # block 0.5, w_res 0.002, w_bal 2, knee 0.8, w_lat 0.2, invalid 1, preempt 1


def _accept(rw: RewardConfig = RW, **kw: float) -> float:
    args = dict(
        offered_value=10.0,
        grant=0.5,
        kbps=2000,
        hops=3,
        util_after=0.9,
        latency_ms=5.0,
        bound_ms=20.0,
        preempted_value=1.5,
    )
    return accept_reward(rw, **{**args, **kw})


def test_accept_reward_on_hand_numbers() -> None:
    # 10·0.5 − 0.002·2·3 − 2·(0.9 − 0.8) − 0.2·5/20 − 1·1.5 = 5 − 0.012 − 0.2 − 0.05 − 1.5
    assert _accept() == pytest.approx(3.238, abs=1e-12)
    # below the knee the balance term is 0: 5 − 0.012 − 0.05 − 1.5
    assert _accept(util_after=0.5) == pytest.approx(3.438, abs=1e-12)
    # no pre-emption, full grant, one hop at 1 Mb/s, latency at the bound: 10 − 0.002 − 0.2
    one = _accept(grant=1.0, kbps=1000, hops=1, util_after=0.0, latency_ms=20.0, preempted_value=0)
    assert one == pytest.approx(9.798, abs=1e-12)


def test_each_weight_scales_its_own_term() -> None:
    zero = RewardConfig(w_res=0, w_bal=0, w_lat=0, preempt_penalty=0)
    assert _accept(zero) == 5.0  # the earned value alone
    assert _accept(zero.model_copy(update={"w_lat": 1.0})) == pytest.approx(5.0 - 0.25)
    assert _accept(zero.model_copy(update={"preempt_penalty": 2.0})) == pytest.approx(2.0)
    assert _accept(zero.model_copy(update={"balance_knee": 0.5, "w_bal": 1.0})) == pytest.approx(
        4.6
    )


def test_reject_and_refused_rewards() -> None:
    assert reject_reward(RW, offered_value=4.0, plain_valid=True) == -2.0
    assert reject_reward(RW, offered_value=4.0, plain_valid=False) == 0.0  # only pre-empting
    assert refused_reward(RW, value=3.0) == -3.0
    assert refused_reward(RewardConfig(invalid_penalty=0.25), value=4.0) == -1.0
