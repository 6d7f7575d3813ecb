"""Students as :class:`~pcnalloc.baselines.base.Policy` objects; registers policy ``student``.

The default edge student proposes the argmax of its **raw** logits, masked actions included,
so a proposal that violates a hard rule is visible in closed loop (the env refuses it; the edge
rule engine would intercept it). ``masked=True`` takes the argmax over valid actions instead
(what the deployed agent executes after interception). A latent student reads the teacher's
128-d state, so it needs the teacher to encode each (full) observation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.distill.checkpoint import StudentCheckpointError, load_student
from pcnalloc.distill.students import EDGE, STATE_COMPACT, MLPStudent


class StudentPolicy:
    """Greedy student decisions.

    Args:
        model: the student network (eval mode is set here).
        env_config: env config of the library it was distilled from (fixes K and L).
        masked: argmax over valid actions only (True) or over all actions (False, default).
        teacher: required for a latent student: an object with ``state_and_q(obs)`` returning
            the 128-d teacher state (e.g. :class:`pcnalloc.teacher.TeacherPolicy`).
        name: registry/report name.
    """

    def __init__(
        self,
        model: MLPStudent,
        env_config: EnvConfig | None = None,
        *,
        masked: bool = False,
        teacher: Any = None,
        name: str = "student",
    ) -> None:
        self.model = model.eval()
        self.masked = bool(masked)
        self.name = name
        self.n_actions = model.n_actions
        if model.kind != EDGE and teacher is None:
            raise StudentCheckpointError(
                f"a {model.kind!r} student reads the teacher state; pass teacher=<checkpoint>"
            )
        self.teacher = teacher
        self.observation = "compact" if model.kind == EDGE else "full"
        self.env_overrides: dict[str, Any] = (
            {
                "k_paths": env_config.k_paths,
                "grant_levels": env_config.grant_levels,
                "candidate_pool": env_config.candidate_pool,
            }
            if env_config is not None
            else {}
        )
        self.model_bytes = model.param_bytes

    @classmethod
    def load(
        cls,
        checkpoint: str | Path,
        *,
        masked: bool = False,
        teacher: Any = None,
        name: str = "student",
    ) -> StudentPolicy:
        """From ``student.pt`` or a ``pcnalloc distill`` output folder.

        ``teacher`` may be a policy object or a teacher checkpoint path (latent students).
        """
        model, ck = load_student(checkpoint)
        env = EnvConfig.model_validate(ck["env_config"]) if ck.get("env_config") else None
        if teacher is not None and isinstance(teacher, str | Path):
            from pcnalloc.teacher import TeacherPolicy

            teacher = TeacherPolicy.load(teacher)
        return cls(model, env, masked=masked, teacher=teacher, name=name)

    def reset(self, seed: int | None = None) -> None:
        return None

    def _input(self, obs: Mapping[str, Any]) -> np.ndarray:
        if self.teacher is not None and self.model.kind != EDGE:
            state, _ = self.teacher.state_and_q(obs)
            state = np.asarray(state, dtype=np.float32)
            if self.model.input_key == STATE_COMPACT:
                return np.concatenate([state, np.asarray(obs["compact"], dtype=np.float32)])
            return state
        return np.asarray(obs["compact"], dtype=np.float32)

    @torch.inference_mode()
    def logits(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Raw student logits (A,) of one observation."""
        x = torch.from_numpy(self._input(obs)).reshape(1, -1)
        return self.model(x)[0].numpy()

    def scores(self, obs: Mapping[str, Any]) -> np.ndarray:
        """Preference (A,) the rule engine ranks substitutes by: the raw logits."""
        return self.logits(obs)

    def act(self, obs: Mapping[str, Any]) -> int:
        """Argmax of the logits (over valid actions only when ``masked``)."""
        z = self.logits(obs)
        if z.shape[0] != obs["action_mask"].shape[0]:
            raise StudentCheckpointError(
                f"student has {z.shape[0]} actions; the observation has "
                f"{obs['action_mask'].shape[0]} (env K·L+1 differs from the library's)"
            )
        if self.masked:
            z = np.where(obs["action_mask"] > 0, z, -np.inf)
        return int(np.argmax(z))


def make_student_policy(
    checkpoint: str | Path | None = None,
    *,
    masked: bool = False,
    teacher: Any = None,
    **kwargs: Any,
) -> StudentPolicy:
    """Registry factory: ``make_policy("student", checkpoint="out/distill_case30/edge")``."""
    if checkpoint is None:
        raise StudentCheckpointError(
            "policy 'student' needs checkpoint=<student.pt or distill output folder>"
        )
    if kwargs.get("k") is not None:
        raise StudentCheckpointError(
            "policy 'student' takes K from its checkpoint; drop the ':K' suffix"
        )
    return StudentPolicy.load(checkpoint, masked=masked, teacher=teacher)


def make_masked_student_policy(
    checkpoint: str | Path | None = None, **kwargs: Any
) -> StudentPolicy:
    """Registry factory of the masked variant (``student-masked``)."""
    kwargs["masked"] = True
    return make_student_policy(checkpoint, **kwargs)


__all__ = ["StudentPolicy", "make_masked_student_policy", "make_student_policy"]
