"""The simulator's fast decision path equals the reference functions it replaced.

The env evaluates each request into buffers kept between decisions
(:class:`~pcnalloc.envs.decision.LiveEvaluation`) and builds the full evaluation only when
``current_evaluation`` is read. On seeded episodes of several cases and policies, every
step's ``current_evaluation`` must equal what :func:`~pcnalloc.envs.features.evaluate_request`
returns on the same state (every field and table: value, dtype, shape), and observations
kept from earlier steps must not change (each step hands out its own arrays).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.envs.features import Evaluation, evaluate_request
from pcnalloc.envs.layout import FIELD_TABLE_SIZES


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def assert_same_evaluation(got: Evaluation, want: Evaluation) -> None:
    """Every field of ``got`` equals ``want``'s (arrays by dtype, shape and value)."""
    for f in dataclasses.fields(Evaluation):
        x, y = getattr(got, f.name), getattr(want, f.name)
        if f.name == "tables":
            assert len(x) == len(y)
            K = got.latency_ms_K.shape[0]
            for i, (tx, ty) in enumerate(zip(x, y, strict=True)):
                # the field rows in full; the slot rows hold K entries (the rest is unset)
                n = FIELD_TABLE_SIZES[i]
                assert _same(tx[:n], ty[:n]), f"field table {i} differs"
                assert _same(tx[n:, :K], ty[n:, :K]), f"slot rows of table {i} differ"
        elif isinstance(y, np.ndarray):
            assert _same(x, y), f"{f.name} differs"
        else:
            assert x == y, f"{f.name} differs"


def fobs_mask(env: PowerCommEnv) -> np.ndarray:
    return env.action_masks()


def _reference(env: PowerCommEnv) -> Evaluation:
    ev, prio, _, _ = evaluate_request(
        env.state,
        env.current_candidates,
        env.current_request,
        env.catalog,
        env.cfg,
        engine=env.engine,
        prio_table_2C=env._prio_table,
        emergency_R=env.emergency_R,
    )
    assert prio == env.current_priority
    return ev


CASES = [
    ("case14", "ksp-ff", "storm", "compact", {}),
    ("case30", "cspf-pe", "storm", "compact", {"traffic": {"load": 1.5}}),
    ("case30", "random", "fiber-cut", "full", {}),
    ("case57", "ksp-ff", "storm", "flat", {"candidate_pool": 8}),
]


@pytest.mark.parametrize(("case", "spec", "family", "mode", "extra"), CASES)
def test_current_evaluation_equals_reference(case, spec, family, mode, extra) -> None:
    pol = make_policy(spec)
    over = {**pol.env_overrides, **extra}
    traffic = {"scenario": family, **over.pop("traffic", {})}
    cfg = env_config(network={"case": case}, traffic=traffic, episode_requests=10**6, **over)
    env = PowerCommEnv(cfg, observation="compact" if mode == "flat" else mode)
    flat = PowerCommEnv(cfg, observation="flat", network=env.net, catalog=env.catalog)
    pol.reset(1)
    obs, _ = env.reset(seed=11)
    fobs, _ = flat.reset(seed=11)
    kept: list[tuple[dict, dict]] = []
    for t in range(150):
        ev = env.current_evaluation
        assert env.current_evaluation is ev  # built once per decision
        assert_same_evaluation(ev, _reference(env))
        assert obs["action_mask"] is ev.mask_A and obs["candidates"] is ev.feats_AF
        assert np.array_equal(fobs, obs["compact"])
        if t % 10 == 0:
            kept.append((obs, {k: v.copy() for k, v in obs.items() if isinstance(v, np.ndarray)}))
        a = pol.act(obs)
        obs, r, _, _, info = env.step(a)
        fobs, fr, _, _, finfo = flat.step(a)  # flat: the evaluation is never read
        assert np.array_equal(finfo.pop("action_mask"), fobs_mask(flat))
        assert r == fr and info == finfo
    for held, copy in kept:  # later decisions never wrote into earlier observations
        for k, v in copy.items():
            assert _same(held[k], v), k


def test_same_evaluation_check_catches_a_planted_difference() -> None:
    cfg = env_config(network={"case": "case14"})
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=3)
    ev = env.current_evaluation
    assert_same_evaluation(ev, _reference(env))
    for plant in ("kbps_A", "hard_AR", "latency_ms_K", "tables"):
        bad = _reference(env)
        if plant == "tables":
            bad.tables[2][0, 0] += 1.0  # a field row
            with pytest.raises(AssertionError):
                assert_same_evaluation(ev, bad)
            bad = _reference(env)
            bad.tables[1][-1, 0] += 1  # a slot row
        else:
            arr = getattr(bad, plant)
            arr.flat[0] = not arr.flat[0] if arr.dtype == bool else arr.flat[0] + 1
        with pytest.raises(AssertionError):
            assert_same_evaluation(ev, bad)


def test_evaluation_kept_across_steps_is_its_own() -> None:
    """An evaluation read at one step is not overwritten by the next decisions."""
    cfg = env_config(network={"case": "case14"})
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=5)
    held = env.current_evaluation
    frozen = _reference(env)
    for _ in range(20):
        env.step(env.reject_action)
        env.current_evaluation  # noqa: B018 - builds this step's evaluation
    assert_same_evaluation(held, frozen)


def test_copied_env_plays_as_the_original() -> None:
    """A copy keeps the evaluation buffers' layout (views of its own tables): both envs then
    make the same decisions (pre-emption planning reads the copied evaluation)."""
    import copy

    pol = make_policy("cspf-pe")
    cfg = env_config(
        network={"case": "case30"}, traffic={"load": 2.0}, episode_requests=10**6,
        **pol.env_overrides,
    )  # fmt: skip
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=2)
    for _ in range(30):
        obs, *_ = env.step(pol.act(obs))
    twin, tobs = copy.deepcopy((env, obs))
    preempted = 0
    assert_same_evaluation(twin.current_evaluation, env.current_evaluation)
    for _ in range(200):
        a = pol.act(obs)
        assert pol.act(tobs) == a
        obs, r, _, _, info = env.step(a)
        tobs, tr, _, _, tinfo = twin.step(a)
        assert r == tr and info == tinfo
        assert_same_evaluation(twin.current_evaluation, env.current_evaluation)
        preempted += info["preempted"]
    assert preempted > 0  # the copies planned pre-emptions


def test_flow_indexes_kept_lazily_match_the_flow_table() -> None:
    """Admissions queue their flows for the link indexes; every read sees them all (the
    invariant check rebuilds the indexes from the flow table), and a lost queued flow is
    caught."""
    pol = make_policy("cspf-pe")
    cfg = env_config(
        network={"case": "case30"}, traffic={"load": 2.0, "scenario": "fiber-cut"},
        episode_requests=10**6, **pol.env_overrides,
    )  # fmt: skip
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=8)
    st = env.state
    preempted = 0
    for t in range(400):
        obs, _, _, _, info = env.step(pol.act(obs))
        preempted += info["preempted"]
        if t % 37 == 0:
            st.check_invariants()
    assert preempted > 0
    for _ in range(5):  # leave some admissions queued
        obs, *_ = env.step(pol.act(obs))
    assert st._unindexed
    fid = next(iter(st._unindexed))
    del st._unindexed[fid]  # planted: a queued flow never reaches the index
    with pytest.raises(AssertionError, match="index disagrees"):
        st.check_invariants()
