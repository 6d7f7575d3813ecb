"""PowerCommEnv.schedule_external: requests made outside the env arrive at their times, are
flagged while on show, leave the env's own draws alone, and bad ones are refused whole."""

from __future__ import annotations

import pytest

from pcnalloc.config import EnvConfig
from pcnalloc.envs.power_comm import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.traffic.generator import Request


@pytest.fixture(scope="module")
def env() -> PowerCommEnv:
    cfg = EnvConfig.model_validate({"network": {"case": "case14"}, "episode_requests": 400})
    return PowerCommEnv(cfg, observation="compact")


def _own_stream(env: PowerCommEnv, seed: int, n: int) -> list[tuple]:  # type: ignore[type-arg]
    env.reset(seed=seed)
    out = []
    while len(out) < n:
        r = env.current_request
        if not env.current_is_external:
            out.append((round(r.time_s, 9), r.cls, r.src, r.dst, round(r.holding_s, 9)))
        env.step(env.reject_action)
    return out


def test_external_requests_arrive_flagged_at_their_times(env: PowerCommEnv) -> None:
    env.reset(seed=3)
    t0 = env.now
    reqs = [Request(-1, dt, 0, 1, 0, 30.0) for dt in (0.5, 2.0, 7.5)]
    assert env.schedule_external(reqs) == 3
    seen = []
    for _ in range(2000):
        if env.current_is_external:
            r = env.current_request
            seen.append((r.time_s - t0, r.cls, r.src, r.dst, r.holding_s))
        env.step(env.reject_action)
        if len(seen) == 3:
            break
    assert [s[0] for s in seen] == pytest.approx([0.5, 2.0, 7.5])
    assert all(s[1:] == (0, 1, 0, 30.0) for s in seen)
    # reset drops what was scheduled
    env.reset(seed=3)
    for _ in range(200):
        assert not env.current_is_external
        env.step(env.reject_action)


def test_external_requests_leave_the_own_traffic_unchanged(env: PowerCommEnv) -> None:
    plain = _own_stream(env, 5, 60)
    env.reset(seed=5)
    env.schedule_external([Request(-1, 0.1 * k, 1, 2, 0, 10.0) for k in range(20)])
    mixed = []
    while len(mixed) < 60:
        r = env.current_request
        if not env.current_is_external:
            mixed.append((round(r.time_s, 9), r.cls, r.src, r.dst, round(r.holding_s, 9)))
        env.step(env.reject_action)
    assert mixed == plain


@pytest.mark.parametrize(
    "bad",
    [
        Request(-1, 1.0, 999, 1, 0, 10.0),  # unknown class
        Request(-1, 1.0, 0, 1, 1, 10.0),  # src == dst
        Request(-1, 1.0, 0, 1, 10_000, 10.0),  # unknown site
        Request(-1, 1.0, 0, 1, 0, 0.0),  # no holding time
        Request(-1, -5.0, 0, 1, 0, 10.0),  # in the past
    ],
)
def test_bad_external_requests_are_refused_whole(env: PowerCommEnv, bad: Request) -> None:
    env.reset(seed=0)
    good = Request(-1, 0.5, 0, 1, 0, 10.0)
    with pytest.raises(ConfigError) as e:
        env.schedule_external([good, bad])
    assert "\n" not in str(e.value)
    for _ in range(300):  # nothing was queued, not even the good one
        assert not env.current_is_external
        env.step(env.reject_action)
