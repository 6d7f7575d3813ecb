"""Student networks: the edge MLP on the compact vector and the latent MLP on the teacher state.

Both map (B, D) float32 → (B, A) logits with plain ``Linear``/``ReLU`` layers and a fixed input
standardisation ((x − mean) / scale, stored as buffers), so ``torch.onnx.export`` traces them
without data-dependent control flow. A student is rebuilt from :meth:`MLPStudent.config`, the
small dict saved in ``student.pt``.

Size budget (DESIGN §6): the edge student must fit in 1 Mbit = 125,000 bytes in fp32. The
default 183 → 96 → 64 → 13 has 24,717 parameters (98,868 bytes) plus 1,464 bytes of input
standardisation buffers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pcnalloc.errors import ConfigError

EDGE = "edge"
LATENT = "latent"
STUDENT_KINDS: tuple[str, ...] = (EDGE, LATENT)
INPUT_KEYS: dict[str, str] = {EDGE: "compact", LATENT: "state"}
"""Library column / observation key each kind reads."""
DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {EDGE: (96, 64), LATENT: (128, 64)}
EDGE_BUDGET_BYTES = 125_000
"""1 Mbit: the fp32 size the edge student must fit in."""


def _check_kind(kind: str) -> None:
    if kind not in STUDENT_KINDS:
        raise ConfigError(f"unknown student kind {kind!r}; accepted: {', '.join(STUDENT_KINDS)}")


class MLPStudent(nn.Module):
    """Standardise → [Linear → ReLU]×len(hidden) → Linear: (B, D) → (B, A) logits.

    Args:
        kind: ``edge`` (reads ``compact``) or ``latent`` (reads the teacher ``state``).
        input_dim: D, width of the input vector.
        n_actions: A = K·L + 1.
        hidden: widths of the hidden layers.

    Attributes:
        input_key: library column / observation key of the input (``compact`` or ``state``).
    """

    def __init__(self, *, kind: str, input_dim: int, n_actions: int, hidden: Sequence[int]) -> None:
        super().__init__()
        if kind not in STUDENT_KINDS:
            raise ConfigError(
                f"unknown student kind {kind!r}; accepted: {', '.join(STUDENT_KINDS)}"
            )
        if input_dim < 1 or n_actions < 2 or any(int(h) < 1 for h in hidden):
            raise ConfigError(
                f"student sizes must be positive (input_dim={input_dim}, n_actions={n_actions}, "
                f"hidden={list(hidden)}); n_actions needs ≥ 2"
            )
        self.kind = kind
        self.input_key = INPUT_KEYS[kind]
        self.input_dim = int(input_dim)
        self.n_actions = int(n_actions)
        self.hidden = tuple(int(h) for h in hidden)
        self.register_buffer("in_mean", torch.zeros(self.input_dim))
        self.register_buffer("in_scale", torch.ones(self.input_dim))
        layers: list[nn.Module] = []
        width = self.input_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, self.n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, x_BD: Tensor) -> Tensor:
        """Logits (B, A) of inputs (B, D) float32."""
        return self.net((x_BD - self.in_mean) / self.in_scale)

    def init_weights(self, generator: torch.Generator) -> None:
        """Re-draw every weight from ``generator`` (PyTorch's default Linear init, seeded)."""
        with torch.no_grad():
            for m in self.net:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                    bound = 1.0 / math.sqrt(m.in_features)
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)

    def set_standardisation(self, mean_D: Tensor, std_D: Tensor, eps: float = 1e-6) -> None:
        """Fix the input standardisation from training-set statistics (constant features → 1)."""
        with torch.no_grad():
            self.in_mean.copy_(mean_D.float())
            self.in_scale.copy_(torch.where(std_D > eps, std_D.float(), torch.ones_like(std_D)))

    @property
    def param_count(self) -> int:
        """Trainable parameters."""
        return int(sum(p.numel() for p in self.parameters()))

    @property
    def param_bytes(self) -> int:
        """fp32 bytes of parameters plus buffers (the standardisation), i.e. the model size."""
        tensors = [*self.parameters(), *self.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def config(self) -> dict[str, Any]:
        """The dict :func:`student_from_config` rebuilds this architecture from."""
        return {
            "kind": self.kind,
            "input_key": self.input_key,
            "input_dim": self.input_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
        }


def student_from_config(cfg: Mapping[str, Any]) -> MLPStudent:
    """Rebuild a student from :meth:`MLPStudent.config` (weights not included).

    Raises:
        ConfigError: for a missing key or an unknown kind.
    """
    try:
        return MLPStudent(
            kind=str(cfg["kind"]),
            input_dim=int(cfg["input_dim"]),
            n_actions=int(cfg["n_actions"]),
            hidden=[int(h) for h in cfg["hidden"]],
        )
    except KeyError as err:
        raise ConfigError(
            f"student config lacks {err.args[0]!r}; needs kind, input_dim, n_actions, hidden"
        ) from None


def make_student(
    kind: str,
    *,
    input_dim: int,
    n_actions: int,
    hidden: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
) -> MLPStudent:
    """A fresh student of ``kind`` (default hidden widths per kind), seeded by ``generator``."""
    _check_kind(kind)
    model = MLPStudent(
        kind=kind,
        input_dim=input_dim,
        n_actions=n_actions,
        hidden=DEFAULT_HIDDEN[kind] if hidden is None else hidden,
    )
    if generator is not None:
        model.init_weights(generator)
    return model


def input_dim_for(kind: str, spec: Any) -> int:
    """D for ``kind`` from a :class:`~pcnalloc.library.LibrarySpec` (compact or state width)."""
    _check_kind(kind)
    return int(spec.compact_dim if kind == EDGE else spec.state_dim)


__all__ = [
    "DEFAULT_HIDDEN",
    "EDGE",
    "EDGE_BUDGET_BYTES",
    "INPUT_KEYS",
    "LATENT",
    "STUDENT_KINDS",
    "MLPStudent",
    "input_dim_for",
    "make_student",
    "student_from_config",
]
