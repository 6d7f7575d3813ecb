"""The validity-blind edge student cannot read the per-action valid flag."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.distill import DistillConfig
from pcnalloc.distill.run import run_distillation
from pcnalloc.distill.students import (
    BLIND,
    BlindMLPStudent,
    make_student,
    student_from_config,
    validity_indices,
)
from pcnalloc.envs.features import CANDIDATE_FEATURES
from pcnalloc.errors import ConfigError
from pcnalloc.library import LibrarySpec

SPEC = LibrarySpec.from_env_config(EnvConfig())


def _student(arch: str) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(0)
    drop = validity_indices(SPEC) if arch == BLIND else None
    return make_student(
        "edge",
        input_dim=SPEC.compact_dim,
        n_actions=SPEC.n_actions,
        arch=arch,
        generator=gen,
        drop=drop,
    )


def test_validity_indices_point_at_the_valid_feature():
    idx = validity_indices(SPEC)
    F = len(CANDIDATE_FEATURES)
    assert len(idx) == SPEC.n_actions and all(b - a == F for a, b in itertools.pairwise(idx))
    # the env puts the mask into the candidate table's "valid" column: same positions
    from pcnalloc.envs import PowerCommEnv

    env = PowerCommEnv(EnvConfig(), observation="compact")
    obs, _ = env.reset(seed=3)
    assert (obs["compact"][idx] == obs["action_mask"]).all()


def test_blind_student_ignores_validity_flags_and_round_trips():
    x = torch.randn(16, SPEC.compact_dim)
    flipped = x.clone()
    flipped[:, validity_indices(SPEC)] = 1 - flipped[:, validity_indices(SPEC)]
    blind = _student(BLIND)
    assert torch.equal(blind(x), blind(flipped))
    # planted fault: the plain MLP reads the flags, so the same check fails for it
    plain = _student("mlp")
    assert not torch.allclose(plain(x), plain(flipped))
    again = student_from_config(blind.config())
    again.load_state_dict(blind.state_dict())
    assert isinstance(again, BlindMLPStudent) and torch.equal(again(x), blind(x))


def test_blind_is_an_edge_student(synthetic_library: Path, tmp_path: Path):
    with pytest.raises(ConfigError, match="edge student"):
        run_distillation(
            synthetic_library,
            kind="latent",
            cfg=DistillConfig(epochs=1),
            out_dir=tmp_path,
            arch=BLIND,
        )
    with pytest.raises(ConfigError, match="unknown student arch 'cnn'"):
        run_distillation(
            synthetic_library,
            kind="edge",
            cfg=DistillConfig(epochs=1),
            out_dir=tmp_path,
            arch="cnn",
        )
