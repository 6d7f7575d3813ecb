"""Teacher checkpoints: atomic ``.pt`` files with weights, optimiser and training state.

A checkpoint is a dict saved with :func:`torch.save`::

    format          "pcnalloc-teacher"
    version         CHECKPOINT_VERSION
    encoder_shape   EncoderShape.to_json()
    n_actions       A = K·L + 1 of the training env
    env_config      EnvConfig.model_dump() of the training env
    teacher_config  TeacherConfig.model_dump()
    online, target  state dicts of the Q networks
    optimizer       Adam state dict
    train_state     {"step", "episode", "updates", "np_rng" (bit-generator state), ...}

It holds no replay data: ``--resume`` restarts from a fresh buffer at the stored step.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path
from typing import Any

import torch

from pcnalloc.errors import PcnallocError
from pcnalloc.fileio import write_atomic
from pcnalloc.nn import EncoderShape, QNetwork

CHECKPOINT_VERSION = 1
FORMAT = "pcnalloc-teacher"
_STEP_RE = re.compile(r"step_(\d+)\.pt$")


class CheckpointError(PcnallocError):
    """A checkpoint that is missing, unreadable, or built for another encoder or action count."""


def step_path(folder: str | Path, step: int) -> Path:
    """The checkpoint file of training step ``step`` in ``folder``."""
    return Path(folder) / f"step_{step:08d}.pt"


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (temp file in the same folder, fsync, rename)."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": CHECKPOINT_VERSION, **payload}, buf)
    p = write_atomic(path, buf.getbuffer())
    return p


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file itself, or the highest-step ``step_*.pt`` in a folder.

    Raises:
        CheckpointError: no such file, or a folder without checkpoints.
    """
    p = Path(path)
    if p.is_file():
        return p
    if p.is_dir():
        steps = [
            (int(m.group(1)), f) for f in p.glob("step_*.pt") if (m := _STEP_RE.search(f.name))
        ]
        if steps:
            return max(steps)[1]
        raise CheckpointError(f"folder {str(p)!r} holds no step_*.pt teacher checkpoint")
    raise CheckpointError(f"teacher checkpoint {str(p)!r} does not exist")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint (file or folder → latest) and check its format."""
    p = resolve_checkpoint(path)
    try:
        ck = torch.load(p, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a corrupt or foreign file
        raise CheckpointError(f"cannot read teacher checkpoint {str(p)!r}: {err}") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise CheckpointError(f"{str(p)!r} is not a pcnalloc teacher checkpoint")
    if ck.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{str(p)!r} has checkpoint version {ck.get('version')!r}; "
            f"this pcnalloc reads {CHECKPOINT_VERSION}"
        )
    ck["path"] = str(p)
    return ck


def check_compatible(ck: dict[str, Any], shape: EncoderShape, n_actions: int | None = None) -> None:
    """Raise :class:`CheckpointError` if ``ck`` was built for another shape or action count."""
    want = shape.to_json()
    have = ck["encoder_shape"]
    bad = [
        f"{k}: checkpoint {have.get(k)!r}, expected {v!r}"
        for k, v in want.items()
        if have.get(k) != v
    ]
    if bad:
        raise CheckpointError(
            f"checkpoint {ck.get('path', '?')} has another encoder shape: " + "; ".join(bad)
        )
    if n_actions is not None and ck["n_actions"] != n_actions:
        raise CheckpointError(
            f"checkpoint {ck.get('path', '?')} was trained with {ck['n_actions']} actions "
            f"(K·L+1); this env has {n_actions}; use the same k_paths and grant_levels"
        )


def model_from_checkpoint(ck: dict[str, Any], key: str = "online") -> QNetwork:
    """Rebuild the Q network stored under ``key`` in a loaded checkpoint."""
    try:
        shape = EncoderShape(**ck["encoder_shape"])
    except TypeError as err:
        raise CheckpointError(f"checkpoint encoder shape is malformed: {err}") from None
    net = QNetwork(shape)
    load_state(net, ck[key], where=ck.get("path", "?"))
    net.eval()
    return net


def load_state(net: torch.nn.Module, state: dict[str, Any], where: str) -> None:
    """``load_state_dict`` turning size/key mismatches into :class:`CheckpointError`."""
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"checkpoint {where} does not fit this network: {first}") from None


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (the library records the teacher it came from)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
