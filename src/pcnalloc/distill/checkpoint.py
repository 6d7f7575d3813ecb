"""Student checkpoints: ``student.pt`` with weights, architecture, distill config, library id.

A checkpoint is a dict saved with :func:`torch.save`::

    format                   "pcnalloc-student"
    version                  STUDENT_CHECKPOINT_VERSION
    student_config           MLPStudent.config() (kind, input_key, input_dim, n_actions, hidden)
    state_dict               weights and the input-standardisation buffers
    distill_config           DistillConfig.model_dump()
    library_metadata_sha256  sha256 of the library's file metadata
    library_spec             LibrarySpec.to_json()
    env_config               the library's base EnvConfig dump
    teacher_sha256           checksum of the teacher the library was rolled out with
    best_epoch, summary      early-stopping epoch and its validation figures
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from pcnalloc.distill.students import MLPStudent, student_from_config
from pcnalloc.errors import PcnallocError
from pcnalloc.fileio import write_atomic

STUDENT_CHECKPOINT_VERSION = 1
STUDENT_FORMAT = "pcnalloc-student"
STUDENT_FILE = "student.pt"


class StudentCheckpointError(PcnallocError):
    """A student checkpoint that is missing, unreadable or of another format/version."""


def save_student(path: str | Path, model: MLPStudent, **payload: Any) -> Path:
    """Write ``student.pt`` atomically (temp file in the same folder, fsync, rename)."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": STUDENT_FORMAT,
            "version": STUDENT_CHECKPOINT_VERSION,
            "student_config": model.config(),
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            **payload,
        },
        buf,
    )
    return write_atomic(path, buf.getvalue())


def resolve_student(path: str | Path) -> Path:
    """``path`` itself if a file, else ``path/student.pt``."""
    p = Path(path)
    if p.is_dir():
        p = p / STUDENT_FILE
    if not p.is_file():
        raise StudentCheckpointError(
            f"student checkpoint {str(p)!r} does not exist; pass a student.pt file or the "
            "folder `pcnalloc distill --out` wrote"
        )
    return p


def load_student(path: str | Path) -> tuple[MLPStudent, dict[str, Any]]:
    """The student (eval mode) and the checkpoint dict from a file or distill output folder."""
    p = resolve_student(path)
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise StudentCheckpointError(f"cannot read student checkpoint {str(p)!r}: {err}") from None
    if not isinstance(ck, dict) or ck.get("format") != STUDENT_FORMAT:
        raise StudentCheckpointError(f"{str(p)!r} is not a pcnalloc student checkpoint")
    if ck.get("version") != STUDENT_CHECKPOINT_VERSION:
        raise StudentCheckpointError(
            f"{str(p)!r} has student checkpoint version {ck.get('version')!r}; this pcnalloc "
            f"reads {STUDENT_CHECKPOINT_VERSION}"
        )
    model = student_from_config(ck["student_config"])
    model.load_state_dict(ck["state_dict"])
    ck["path"] = str(p)
    return model.eval(), ck


__all__ = [
    "STUDENT_CHECKPOINT_VERSION",
    "STUDENT_FILE",
    "StudentCheckpointError",
    "load_student",
    "resolve_student",
    "save_student",
]
