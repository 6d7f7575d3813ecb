"""The trained teacher as a :class:`~pcnalloc.baselines.base.Policy` (greedy, full observation)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.nn import QNetwork, collate, mask_q
from pcnalloc.teacher.checkpoint import (
    CheckpointError,
    file_sha256,
    load_checkpoint,
    model_from_checkpoint,
)


class TeacherPolicy:
    """Greedy masked argmax of the teacher's Q-values.

    Args:
        model: the Q network (encoder + head), put in eval mode.
        env_config: the env config the teacher was trained on (fixes K and L).
        name: registry/report name.
        sha256: checksum of the checkpoint file it came from ("" if in-memory).
    """

    observation = "full"

    def __init__(
        self,
        model: QNetwork,
        env_config: EnvConfig,
        *,
        name: str = "teacher",
        sha256: str = "",
    ) -> None:
        self.model = model.eval()
        self.env_config = env_config
        self.name = name
        self.sha256 = sha256
        self.env_overrides: dict[str, Any] = {
            "k_paths": env_config.k_paths,
            "grant_levels": env_config.grant_levels,
            "candidate_pool": env_config.candidate_pool,
        }
        self.model_bytes = int(sum(p.numel() * p.element_size() for p in model.parameters()))
        self.n_actions = env_config.n_actions

    @classmethod
    def load(cls, checkpoint: str | Path, *, name: str = "teacher") -> TeacherPolicy:
        """From a ``.pt`` file or a training folder (its latest checkpoint)."""
        ck = load_checkpoint(checkpoint)
        env = EnvConfig.model_validate(ck["env_config"])
        return cls(model_from_checkpoint(ck), env, name=name, sha256=file_sha256(ck["path"]))

    def reset(self, seed: int | None = None) -> None:
        return None

    def _check(self, obs: Mapping[str, Any]) -> None:
        a = obs["action_mask"].shape[0]
        if a != self.n_actions:
            raise CheckpointError(
                f"teacher was trained with {self.n_actions} actions; the observation has {a} "
                f"(use k_paths={self.env_config.k_paths}, grant_levels="
                f"{self.env_config.grant_levels})"
            )

    @torch.no_grad()
    def state_and_q_batch(
        self, observations: Sequence[Mapping[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Joint states (B, 128) float32 and raw Q-values (B, A) float32 (unmasked)."""
        self._check(observations[0])
        state, q = self.model(collate(observations))
        return state.numpy(), q.numpy()

    def state_and_q(self, obs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Joint state (128,) and raw Q-values (A,) of one observation."""
        s, q = self.state_and_q_batch([obs])
        return s[0], q[0]

    @torch.no_grad()
    def act(self, obs: Mapping[str, Any]) -> int:
        """Greedy valid action (masked argmax)."""
        self._check(obs)
        b = collate([obs])
        return int(mask_q(self.model(b)[1], b.mask_BA).argmax(dim=1)[0])


def make_teacher(checkpoint: str | Path | None = None, **kwargs: Any) -> TeacherPolicy:
    """Registry factory: ``make_policy("teacher@out/teacher_case30")`` or
    ``make_policy("teacher", checkpoint=PATH)``; the checkpoint is always given explicitly
    (in a sweep it travels inside the spec string to every worker)."""
    if not checkpoint:
        raise CheckpointError(
            "policy 'teacher' needs a checkpoint: teacher@<.pt file or training folder>"
        )
    if kwargs.get("k") is not None:
        raise CheckpointError("policy 'teacher' takes K from its checkpoint; drop the ':K' suffix")
    return TeacherPolicy.load(checkpoint)
