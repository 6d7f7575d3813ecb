"""Training end to end: checkpoints, resume from the same step, determinism, typed errors."""

from __future__ import annotations

import csv

import pytest
import torch

from pcnalloc.baselines import make_policy
from pcnalloc.config import env_config
from pcnalloc.envs import PowerCommEnv
from pcnalloc.nn import EncoderShape
from pcnalloc.teacher import CheckpointError, TeacherPolicy, load_checkpoint, train_teacher
from pcnalloc.teacher.checkpoint import check_compatible


def test_train_resume_continues_from_same_step(tiny_teacher_cfg, tmp_path):
    out = tmp_path / "run"
    r1 = train_teacher(tiny_teacher_cfg(steps=100), out)
    assert r1.step == 100 and (out / "step_00000100.pt").is_file()
    ck = load_checkpoint(out)
    assert ck["train_state"]["step"] == 100 and ck["n_actions"] == 13
    r2 = train_teacher(tiny_teacher_cfg(steps=200), out, resume=True)
    assert r2.step == 200 and r2.updates > r1.updates
    ck2 = load_checkpoint(out)
    assert ck2["path"].endswith("step_00000200.pt")
    assert ck2["train_state"]["episode"] >= ck["train_state"]["episode"]
    with open(out / "train_log.csv") as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh)]
    assert steps == [50, 100, 150, 200]
    assert (out / "learning_curve.png").stat().st_size > 1000


def test_same_seed_same_weights(tiny_teacher_cfg, tmp_path):
    a = train_teacher(tiny_teacher_cfg(steps=60, learning_starts=30), tmp_path / "a")
    b = train_teacher(tiny_teacher_cfg(steps=60, learning_starts=30), tmp_path / "b")
    sa, sb = load_checkpoint(a.checkpoint)["online"], load_checkpoint(b.checkpoint)["online"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = train_teacher(tiny_teacher_cfg(steps=60, learning_starts=30, seed=1), tmp_path / "c")
    sc = load_checkpoint(c.checkpoint)["online"]
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_mismatched_checkpoint_raises_typed_error(tiny_teacher_cfg, tmp_path):
    cfg = tiny_teacher_cfg(steps=20, learning_starts=10)
    res = train_teacher(cfg, tmp_path / "r")
    ck = load_checkpoint(res.checkpoint)
    other = EncoderShape.for_env(cfg.env, **{**cfg.encoder_sizes(), "hidden": 32})
    with pytest.raises(CheckpointError, match="hidden"):
        check_compatible(ck, other)
    same = EncoderShape.for_env(cfg.env, **cfg.encoder_sizes())
    with pytest.raises(CheckpointError, match="actions"):
        check_compatible(ck, same, n_actions=7)
    with pytest.raises(CheckpointError, match="encoder shape"):
        train_teacher(tiny_teacher_cfg(steps=40, hidden=32), tmp_path / "r", resume=True)
    # The policy refuses observations with another action count.
    pol = TeacherPolicy.load(tmp_path / "r")
    env = PowerCommEnv(
        env_config(network={"case": cfg.env.network.case}, k_paths=2, traffic={"warm_start": False})
    )
    obs, _ = env.reset(seed=0)
    with pytest.raises(CheckpointError, match="13 actions"):
        pol.act(obs)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    # Registered under "teacher".
    assert make_policy("teacher", checkpoint=str(tmp_path / "r")).name == "teacher"
    # The checkpoint rides in the spec, so sweep workers need nothing from the environment.
    assert make_policy(f"teacher@{tmp_path / 'r'}").name == "teacher"


def test_teacher_needs_an_explicit_checkpoint(monkeypatch, tmp_path):
    """No side channel: an environment variable naming a checkpoint is not read."""
    monkeypatch.setenv("PCNALLOC_TEACHER", str(tmp_path / "r"))
    with pytest.raises(CheckpointError, match=r"teacher@"):
        make_policy("teacher")
