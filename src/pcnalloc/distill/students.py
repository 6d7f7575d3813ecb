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
"""Library column / observation key each kind reads (plain MLP arch)."""
STATE_COMPACT = "state+compact"
"""Input of the shared-head latent student: the teacher state followed by the compact vector."""
BLIND = "mlp-blind"
"""Validity-blind edge MLP: the compact vector without each action's ``valid`` flag (DESIGN
§6). With the flag in the input, h(s, a) = 1 − mask adds nothing the KL term does not already
say; without it the student must learn which actions break a hard rule, which is what the
hard-constraint term of the loss is for."""
ARCHS: tuple[str, ...] = ("mlp", "shared", BLIND)
DEFAULT_ARCH: dict[str, str] = {EDGE: "mlp", LATENT: "mlp"}
"""Arch used when none is given. On the case30 library (52k rows) the plain edge MLP reached
96.1 % held-out top-1 agreement (KL 0.0038, 100 KB) against 95.0 % (KL 0.0056, 40 KB) for the
shared head; the latent MLP is the source method's state-only student (``shared`` adds the
candidate features it lacks)."""
DEFAULT_HIDDEN: dict[str, tuple[int, ...]] = {
    EDGE: (96, 64),
    LATENT: (128, 64),
    "shared": (64, 64, 32),
}
"""Default hidden widths per kind (plain MLP) and for the shared-head edge arch."""
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

    in_mean: Tensor
    in_scale: Tensor
    net: nn.Module

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
            for m in self.net.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                    if m.bias is not None:
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
            "arch": "mlp",
            "kind": self.kind,
            "input_key": self.input_key,
            "input_dim": self.input_dim,
            "n_actions": self.n_actions,
            "hidden": list(self.hidden),
        }


class BlindMLPStudent(MLPStudent):
    """:class:`MLPStudent` that cannot read the per-action validity flag.

    After standardisation the input is multiplied by a fixed 0/1 buffer that zeroes the
    ``valid`` candidate feature of every action (indices ``drop``), so no weight ever sees it;
    a plain ``Mul`` in ONNX.

    Args:
        drop: input indices hidden from the network (default for a compact layout:
            :func:`validity_indices`).
        kind, input_dim, n_actions, hidden: as :class:`MLPStudent`.
    """

    keep: Tensor

    def __init__(
        self,
        *,
        kind: str,
        input_dim: int,
        n_actions: int,
        hidden: Sequence[int],
        drop: Sequence[int],
    ) -> None:
        super().__init__(kind=kind, input_dim=input_dim, n_actions=n_actions, hidden=hidden)
        self.drop = tuple(int(i) for i in drop)
        if any(not 0 <= i < input_dim for i in self.drop):
            raise ConfigError(f"blind student: drop indices must be in [0, {input_dim})")
        keep = torch.ones(self.input_dim)
        keep[list(self.drop)] = 0.0
        self.register_buffer("keep", keep)

    def forward(self, x_BD: Tensor) -> Tensor:
        """Logits (B, A); the dropped inputs are zero whatever their value."""
        return self.net((x_BD - self.in_mean) / self.in_scale * self.keep)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "arch": BLIND, "drop": list(self.drop)}


def validity_indices(spec: Any) -> list[int]:
    """Positions of every action's ``valid`` candidate feature in the compact vector."""
    from pcnalloc.envs.layout import CANDIDATE_FEATURES

    lay = compact_layout(spec, EDGE)
    f, r = lay["n_feats"], lay["request_dim"]
    v = CANDIDATE_FEATURES.index("valid")
    return [r + a * f + v for a in range(int(spec.n_actions))]


class SharedHeadStudent(MLPStudent):
    """Edge student that scores every action with one shared head, like the teacher's Q head.

    The compact vector is laid out ``[request (R) | candidates (A·F, action-major) | history
    and network statistics (T)]``. A context embedding g = ReLU(W_g·[request, stats]) is shared
    by all actions; each action's score is an MLP over its own F candidate features plus g
    (first layer ``W_c·cand_a + W'_g·g``, broadcast over actions) plus a learnt per-action bias.
    Only Linear/ReLU, static slices and reshapes: exportable to ONNX as-is.

    Args:
        input_dim: D = R + A·F + T.
        n_actions: A.
        n_feats: F, candidate features per action.
        request_dim: R, width of the request block at the start of the vector.
        hidden: (context width, per-action hidden widths…), e.g. (64, 64, 32).
        kind: ``edge`` (input ``compact``) or ``latent`` (input ``state+compact``: the teacher
            state is prepended and counted in R, so it joins the shared context — the same
            factorisation as the teacher's Q head, Q(s, a) = f([state ‖ candidate_a])).
    """

    def __init__(
        self,
        *,
        input_dim: int,
        n_actions: int,
        n_feats: int,
        request_dim: int,
        hidden: Sequence[int],
        kind: str = EDGE,
    ) -> None:
        nn.Module.__init__(self)
        _check_kind(kind)
        tail = input_dim - request_dim - n_actions * n_feats
        if len(hidden) < 2 or tail < 0 or request_dim < 0 or n_feats < 1:
            raise ConfigError(
                f"shared-head student needs hidden=(context, h1, …) and D = R + A·F + T ≥ 0; "
                f"got hidden={list(hidden)}, D={input_dim}, R={request_dim}, A={n_actions}, "
                f"F={n_feats}"
            )
        self.kind = kind
        self.arch = "shared"
        self.input_key = INPUT_KEYS[EDGE] if kind == EDGE else STATE_COMPACT
        self.input_dim, self.n_actions = int(input_dim), int(n_actions)
        self.n_feats, self.request_dim, self.tail_dim = int(n_feats), int(request_dim), tail
        self.hidden = tuple(int(h) for h in hidden)
        self.register_buffer("in_mean", torch.zeros(self.input_dim))
        self.register_buffer("in_scale", torch.ones(self.input_dim))
        g, h1 = self.hidden[0], self.hidden[1]
        self.context = nn.Linear(request_dim + tail, g)
        self.cand_in = nn.Linear(n_feats, h1)
        self.ctx_in = nn.Linear(g, h1, bias=False)
        layers: list[nn.Module] = []
        width = h1
        for h in self.hidden[2:]:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.head = nn.Sequential(*layers)
        self.action_bias = nn.Parameter(torch.zeros(self.n_actions))
        self.net = nn.ModuleList([self.context, self.cand_in, self.ctx_in, *self.head])

    def forward(self, x_BD: Tensor) -> Tensor:
        """Logits (B, A) of compact inputs (B, D) float32."""
        z = (x_BD - self.in_mean) / self.in_scale
        r, a_end = self.request_dim, self.request_dim + self.n_actions * self.n_feats
        cand_BAF = z[:, r:a_end].reshape(-1, self.n_actions, self.n_feats)
        ctx_BG = torch.relu(self.context(torch.cat([z[:, :r], z[:, a_end:]], dim=1)))
        h_BAH = torch.relu(self.cand_in(cand_BAF) + self.ctx_in(ctx_BG).unsqueeze(1))
        return self.head(h_BAH).squeeze(-1) + self.action_bias

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "arch": "shared",
            "n_feats": self.n_feats,
            "request_dim": self.request_dim,
        }


def student_from_config(cfg: Mapping[str, Any]) -> MLPStudent:
    """Rebuild a student from :meth:`MLPStudent.config` (weights not included).

    Raises:
        ConfigError: for a missing key or an unknown kind.
    """
    try:
        if cfg.get("arch", "mlp") == BLIND:
            return BlindMLPStudent(
                kind=str(cfg["kind"]),
                input_dim=int(cfg["input_dim"]),
                n_actions=int(cfg["n_actions"]),
                hidden=[int(h) for h in cfg["hidden"]],
                drop=[int(i) for i in cfg["drop"]],
            )
        if cfg.get("arch", "mlp") == "shared":
            return SharedHeadStudent(
                input_dim=int(cfg["input_dim"]),
                n_actions=int(cfg["n_actions"]),
                n_feats=int(cfg["n_feats"]),
                request_dim=int(cfg["request_dim"]),
                hidden=[int(h) for h in cfg["hidden"]],
                kind=str(cfg.get("kind", EDGE)),
            )
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


def compact_layout(spec: Any, kind: str = EDGE) -> dict[str, int]:
    """``n_feats`` (F) and ``request_dim`` (R) of a shared-head student's input for ``spec``
    (for ``latent`` the teacher state is prepended, so R grows by its width S); the block
    order and widths are those of the declared layout (:mod:`pcnalloc.envs.layout`)."""
    from pcnalloc.envs.layout import CANDIDATE_FEATURES, HISTORY_STATS, NETWORK_STATS

    F = len(CANDIDATE_FEATURES)
    T = len(HISTORY_STATS) + len(NETWORK_STATS)  # the blocks after the candidate table
    R = int(spec.compact_dim - spec.n_actions * F - T)
    return {"n_feats": F, "request_dim": R + (int(spec.state_dim) if kind == LATENT else 0)}


def make_student(
    kind: str,
    *,
    input_dim: int,
    n_actions: int,
    hidden: Sequence[int] | None = None,
    arch: str = "mlp",
    layout: Mapping[str, int] | None = None,
    generator: torch.Generator | None = None,
    drop: Sequence[int] | None = None,
) -> MLPStudent:
    """A fresh student, seeded by ``generator``.

    Args:
        kind: ``edge`` or ``latent``.
        input_dim: D.
        n_actions: A.
        hidden: hidden widths (default per kind and arch, see ``DEFAULT_HIDDEN``).
        arch: ``mlp`` (plain MLP) or ``shared`` (shared per-action head, see
            :class:`SharedHeadStudent`; needs ``layout`` from :func:`compact_layout`).
        layout: ``{"n_feats", "request_dim"}`` of the input vector (``shared`` only; for a
            latent student R includes the prepended state).
        generator: seeds the weights (None: torch's default init).
        drop: input indices a ``mlp-blind`` student does not read (its validity flags, from
            :func:`validity_indices`).
    """
    _check_kind(kind)
    if arch not in ARCHS:
        raise ConfigError(f"unknown student arch {arch!r}; accepted: {', '.join(ARCHS)}")
    model: MLPStudent
    if arch == "shared":
        if layout is None:
            raise ConfigError("arch 'shared' needs the compact layout (see compact_layout)")
        model = SharedHeadStudent(
            input_dim=input_dim,
            n_actions=n_actions,
            n_feats=int(layout["n_feats"]),
            request_dim=int(layout["request_dim"]),
            hidden=DEFAULT_HIDDEN["shared"] if hidden is None else hidden,
            kind=kind,
        )
    elif arch == BLIND:
        if kind != EDGE or drop is None:
            raise ConfigError(
                f"arch {BLIND!r} is an edge student (compact input) and needs the validity "
                f"indices (see validity_indices); got kind {kind!r}"
            )
        model = BlindMLPStudent(
            kind=kind,
            input_dim=input_dim,
            n_actions=n_actions,
            hidden=DEFAULT_HIDDEN[kind] if hidden is None else hidden,
            drop=drop,
        )
    else:
        model = MLPStudent(
            kind=kind,
            input_dim=input_dim,
            n_actions=n_actions,
            hidden=DEFAULT_HIDDEN[kind] if hidden is None else hidden,
        )
    if generator is not None:
        model.init_weights(generator)
    return model


def input_key_for(kind: str, arch: str = "mlp") -> str:
    """The input a ``kind``/``arch`` student reads: compact, state, or state+compact."""
    _check_kind(kind)
    return STATE_COMPACT if (kind == LATENT and arch == "shared") else INPUT_KEYS[kind]


def input_dim_for(kind: str, spec: Any, arch: str = "mlp") -> int:
    """D for ``kind``/``arch`` from a :class:`~pcnalloc.library.LibrarySpec`."""
    key = input_key_for(kind, arch)
    dims = {"compact": spec.compact_dim, "state": spec.state_dim}
    return int(sum(dims[k] for k in key.split("+")))


__all__ = [
    "ARCHS",
    "BLIND",
    "DEFAULT_ARCH",
    "DEFAULT_HIDDEN",
    "EDGE",
    "EDGE_BUDGET_BYTES",
    "INPUT_KEYS",
    "LATENT",
    "STATE_COMPACT",
    "STUDENT_KINDS",
    "BlindMLPStudent",
    "MLPStudent",
    "SharedHeadStudent",
    "compact_layout",
    "input_dim_for",
    "input_key_for",
    "make_student",
    "student_from_config",
    "validity_indices",
]
