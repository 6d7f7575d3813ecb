"""Learned mode policies: the per-device teacher and its distilled edge student.

Both decide the epoch's modes from :func:`~pcnalloc.access.features.device_features` and
leave the slot-level subchannels to the paper's deferred acceptance (the same allocator as
``matching``), so a comparison with ``matching`` isolates the mode decision. The hard limits
are the guard around the network's raw choice: a mode without a reliable subchannel is never
taken (the reliability mask, C7) and C3/C4 are met by keeping the strongest preferences
(:func:`~pcnalloc.twolayer.teacher.joint_modes`); quota (C5) and one device per subchannel (C6)
hold by the allocator, and :class:`~pcnalloc.access.model.AccessModel` checks all of them.
``guard_overrides`` counts the device-epochs where the raw argmax was changed by the guard.

A teacher with the ``gnn`` encoder reads the device–subchannel graph of the epoch
(:mod:`.graph`) instead of the rows alone; its student, distilled from its library, reads the
rows, so the edge side is an MLP whichever teacher it was distilled from.

Specs: ``teacher@PATH`` (checkpoint of ``pcnalloc access train``'s teacher), ``student@PATH``
(``student.pt`` or the folder holding it), ``learned@PATH`` (a training folder: its student).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pcnalloc.access.errors import AccessConfigError
from pcnalloc.access.features import N_FEATURES, device_features
from pcnalloc.access.policies import matching_allocate
from pcnalloc.access.registry import register_access_kind
from pcnalloc.twolayer.teacher import joint_modes, load_teacher

if TYPE_CHECKING:
    from pcnalloc.access.model import AccessModel, SlotView

TEACHER_FILE = "teacher.pt"
STUDENT_DIR = "student"
LEARNED_KINDS: tuple[str, ...] = ("teacher", "student", "learned")


class LearnedModePolicy:
    """Modes from a network's two scores per device; subchannels by deferred acceptance.

    Args:
        net: torch module mapping (I, N_FEATURES) float32 → (I, 2) scores (Q or logits).
        name: report name (starts with ``teacher`` or ``student`` so the paired statistics
            count it as learned).
    """

    def __init__(self, net: Any, name: str) -> None:
        self.net = net
        self.name = name
        self.guard_overrides = 0
        self.decisions = 0
        self.mode_us: list[float] = []
        self.propose_to_need = True
        self._graph_of: AccessModel | None = None
        self._static: Any = None

    def reset(self, seed: int | None = None) -> None:
        self._graph_of = None
        self.guard_overrides = 0
        self.decisions = 0
        self.mode_us = []

    def scores(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.net(torch.from_numpy(x)).numpy()

    def model_scores(self, model: AccessModel, x: np.ndarray | None = None) -> np.ndarray:
        """Scores (I, 2) at ``model``'s epoch: :meth:`scores` of the device rows ``x``, or,
        for a network over the device–subchannel graph (``net.reads_graph``), of the epoch's
        graph (its static part cached per model, the mean SINR being fixed per episode)."""
        if x is None:
            x = device_features(model)
        if not getattr(self.net, "reads_graph", False):
            return self.scores(x)
        import torch

        from pcnalloc.twolayer.graph import batch_graphs, static_graph

        if self._graph_of is not model:
            self._static = static_graph(model, int(self.net.top_k))
            self._graph_of = model
        with torch.no_grad():
            return self.net(batch_graphs([self._static], [x])).numpy()

    def modes(self, model: AccessModel) -> np.ndarray:
        self.propose_to_need = model.cfg.propose_to_need
        t0 = time.perf_counter()
        s = self.model_scores(model)
        modes = joint_modes(s, model.reachable, model.cfg)
        self.mode_us.append((time.perf_counter() - t0) * 1e6)
        self.guard_overrides += int((modes != np.argmax(s, axis=1)).sum())
        self.decisions += model.n
        return modes

    def allocate(self, view: SlotView) -> np.ndarray:
        return matching_allocate(view, self.propose_to_need)


def _student_net(path: Path) -> Any:
    from pcnalloc.distill.checkpoint import StudentCheckpointError, load_student

    try:
        model, _ck = load_student(path)
    except StudentCheckpointError as err:
        raise AccessConfigError(str(err)) from None
    if model.input_dim != N_FEATURES or model.n_actions != 2:
        raise AccessConfigError(
            f"student {str(path)!r} reads {model.input_dim} inputs with {model.n_actions} "
            f"actions; an access student reads {N_FEATURES} with 2 (PLC, 5G)"
        )
    return model


def make_learned_policy(spec: str) -> LearnedModePolicy:
    """``teacher@PATH``, ``student@PATH`` or ``learned@PATH`` (see the module docstring).

    Raises:
        AccessConfigError: an unknown kind, or a path that holds no such checkpoint.
    """
    kind, _, arg = spec.partition("@")
    if kind not in LEARNED_KINDS or not arg:
        raise AccessConfigError(
            f"bad learned access policy {spec!r}; accepted: teacher@PATH, student@PATH, "
            "learned@FOLDER"
        )
    p = Path(arg)
    if kind == "teacher":
        net, _ = load_teacher(p / TEACHER_FILE if p.is_dir() else p)
        return LearnedModePolicy(net, "teacher")
    if kind == "learned" and p.is_dir() and (p / STUDENT_DIR).is_dir():
        p = p / STUDENT_DIR
    return LearnedModePolicy(_student_net(p), "student")


for _kind in LEARNED_KINDS:
    register_access_kind(_kind, make_learned_policy)

__all__ = ["LEARNED_KINDS", "LearnedModePolicy", "make_learned_policy"]
