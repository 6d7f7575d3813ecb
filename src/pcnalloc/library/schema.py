"""Column layout, shapes and file metadata of the trajectory library (DESIGN §6).

A library is a folder of Parquet files (``part-*.parquet``) plus ``_manifest.json`` (its
summary with each part's SHA-256 and row count; the underscore makes Parquet readers skip it,
so ``pandas.read_parquet(folder)`` reads the rows). Each row is one decision of a teacher
rollout. Shapes below use A = K·L + 1 actions, D = compact
dimension (183 with the default catalog and K = 4, L = 3), S = teacher state dimension (128)
and Q = ``len(SOFT_COSTS)`` soft-cost kinds (4).

==============  ======================================  =========================================
column          Arrow type                              meaning
==============  ======================================  =========================================
``compact``     fixed_size_list<float32>[D]             edge student input (``obs["compact"]``)
``state``       fixed_size_list<float32>[S]             teacher's 128-d joint state
``q_values``    fixed_size_list<float32>[A]             teacher Q(s, a) for every action, raw
                                                        (masked actions keep their raw score;
                                                        use ``action_mask`` to mask them)
``action_mask`` fixed_size_list<int8>[A]                1 = valid (hard rules pass)
``hard``        fixed_size_list<int8>[A]                h(s, a): 1 if any hard rule is violated
                                                        (``Evaluation.hard_AR.any(1)``); reject = 0
``soft``        fixed_size_list<float32>[A·Q]           c(s, a, q) ≥ 0 per soft-cost kind q,
                                                        flattened action-major (index a·Q + q);
                                                        kinds in ``SOFT_COSTS`` order; the reader
                                                        returns it as (B, A, Q). Sum over q for a
                                                        scalar magnitude per action.
``action``      int16                                   action taken (after exploration)
``greedy``      int8                                    1 if ``action`` was the teacher's argmax
``reward``      float32                                 env reward of that step
``episode_id``  int64                                   unique per (case, load, seed) episode
``case``        string                                  grid case name
``load``        float32                                 offered load ρ
``seed``        int64                                   env seed of the episode
``step``        int32                                   decision index within the episode
``source``      string                                  who chose ``action``: the teacher spec
                                                        (``dqn:<sha256 prefix>`` for a checkpoint,
                                                        the policy spec such as ``cspf-pe:4``
                                                        for a classical teacher); several values
                                                        in one multi-teacher library
==============  ======================================  =========================================

File metadata (key ``pcnalloc``, JSON): ``schema_version``, ``spec`` (the :class:`LibrarySpec`
below), ``env_config`` (base EnvConfig dump), ``teacher_sha256``, ``seeds``, ``cases``,
``loads`` and free-form ``extra``. Key ``compact_features`` (JSON list): the name of each
position of ``compact`` (:func:`compact_feature_names`), for users reading with plain pyarrow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from pcnalloc.config import EnvConfig
from pcnalloc.envs.features import HARD_RULES, SOFT_COSTS
from pcnalloc.envs.layout import compact_layout
from pcnalloc.envs.observation import compact_dim
from pcnalloc.errors import PcnallocError
from pcnalloc.traffic.catalog import load_catalog

SCHEMA_VERSION = 2
"""Bumped whenever a column is added, removed or changes meaning (2: ``source``)."""
READABLE_VERSIONS: tuple[int, ...] = (1, 2)
"""Versions the reader accepts; a v1 file (no ``source`` column) reads its source from the
metadata's ``teacher`` entry (``dqn`` when absent)."""
METADATA_KEY = b"pcnalloc"
FEATURES_KEY = b"compact_features"
"""Schema metadata key whose value is the JSON list of the ``compact`` column's feature names
(one per position), readable with plain pyarrow: ``pq.read_schema(part).metadata``."""
STATE_DIM = 128
"""Teacher joint-state width S."""

COMPACT = "compact"
STATE = "state"
Q_VALUES = "q_values"
ACTION_MASK = "action_mask"
HARD = "hard"
SOFT = "soft"
ACTION = "action"
GREEDY = "greedy"
REWARD = "reward"
EPISODE_ID = "episode_id"
CASE = "case"
LOAD = "load"
SEED = "seed"
STEP = "step"
SOURCE = "source"

VECTOR_COLUMNS: tuple[str, ...] = (COMPACT, STATE, Q_VALUES, ACTION_MASK, HARD, SOFT)
SCALAR_COLUMNS: tuple[str, ...] = (
    ACTION,
    GREEDY,
    REWARD,
    EPISODE_ID,
    CASE,
    LOAD,
    SEED,
    STEP,
    SOURCE,
)
STRING_COLUMNS: tuple[str, ...] = (CASE, SOURCE)
COLUMNS: tuple[str, ...] = VECTOR_COLUMNS + SCALAR_COLUMNS


class LibraryError(PcnallocError):
    """A trajectory library that is missing, malformed, or built for another env config."""


@dataclass(frozen=True)
class LibrarySpec:
    """Everything a consumer must agree on to read rows: widths, action count, labels.

    Attributes:
        n_actions: A = K·L + 1.
        k_paths: K candidate paths.
        grant_levels: L grant slots.
        compact_dim: D, width of the compact student input.
        state_dim: S, width of the teacher state.
        soft_costs: names of the Q soft-cost kinds, in column order.
        hard_rules: names of the hard rules folded into ``hard``.
        catalog: service class names in catalog order.
    """

    n_actions: int
    k_paths: int
    grant_levels: int
    compact_dim: int
    state_dim: int = STATE_DIM
    soft_costs: tuple[str, ...] = SOFT_COSTS
    hard_rules: tuple[str, ...] = HARD_RULES
    catalog: tuple[str, ...] = ()

    @classmethod
    def from_env_config(cls, cfg: EnvConfig, state_dim: int = STATE_DIM) -> LibrarySpec:
        """The spec of rows produced by an env built from ``cfg``."""
        cat = load_catalog(cfg.traffic.catalog, max_levels=cfg.grant_levels)
        return cls(
            n_actions=cfg.n_actions,
            k_paths=cfg.k_paths,
            grant_levels=cfg.grant_levels,
            compact_dim=compact_dim(cat, cfg),
            state_dim=state_dim,
            catalog=tuple(cat.names),
        )

    @property
    def n_soft(self) -> int:
        return len(self.soft_costs)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LibrarySpec:
        try:
            fields: dict[str, Any] = {
                k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
            }
            return cls(**fields)
        except TypeError as err:
            raise LibraryError(f"malformed library spec {d!r}: {err}") from None

    def mismatches(self, other: LibrarySpec) -> list[str]:
        """Human-readable ``field: ours vs theirs`` for every differing field."""
        a, b = self.to_json(), other.to_json()
        return [f"{k}: library has {a[k]!r}, expected {b[k]!r}" for k in a if a[k] != b[k]]


def arrow_schema(spec: LibrarySpec) -> pa.Schema:
    """The Arrow schema of a library built for ``spec`` (see the module table)."""
    A = spec.n_actions
    return pa.schema(
        [
            pa.field(COMPACT, pa.list_(pa.float32(), spec.compact_dim)),
            pa.field(STATE, pa.list_(pa.float32(), spec.state_dim)),
            pa.field(Q_VALUES, pa.list_(pa.float32(), A)),
            pa.field(ACTION_MASK, pa.list_(pa.int8(), A)),
            pa.field(HARD, pa.list_(pa.int8(), A)),
            pa.field(SOFT, pa.list_(pa.float32(), A * spec.n_soft)),
            pa.field(ACTION, pa.int16()),
            pa.field(GREEDY, pa.int8()),
            pa.field(REWARD, pa.float32()),
            pa.field(EPISODE_ID, pa.int64()),
            pa.field(CASE, pa.string()),
            pa.field(LOAD, pa.float32()),
            pa.field(SEED, pa.int64()),
            pa.field(STEP, pa.int32()),
            pa.field(SOURCE, pa.string()),
        ]
    )


def column_shapes(spec: LibrarySpec) -> dict[str, tuple[int, ...]]:
    """Per-row numpy shape of every column as the reader returns it (() = scalar)."""
    A = spec.n_actions
    return {
        COMPACT: (spec.compact_dim,),
        STATE: (spec.state_dim,),
        Q_VALUES: (A,),
        ACTION_MASK: (A,),
        HARD: (A,),
        SOFT: (A, spec.n_soft),
        **{c: () for c in SCALAR_COLUMNS},
    }


def encode_metadata(
    spec: LibrarySpec,
    *,
    env_config: EnvConfig | dict[str, Any],
    teacher_sha256: str,
    seeds: list[int],
    cases: list[str],
    loads: list[float],
    extra: dict[str, Any] | None = None,
    feature_names: Sequence[str] | None = None,
) -> dict[bytes, bytes]:
    """Parquet key/value metadata for a library file.

    ``feature_names`` names the ``compact`` positions (default: :func:`compact_feature_names`);
    they are stored under :data:`FEATURES_KEY` when their count is the compact width.
    """
    env = env_config.model_dump() if isinstance(env_config, EnvConfig) else env_config
    meta = {
        "schema_version": SCHEMA_VERSION,
        "spec": spec.to_json(),
        "env_config": env,
        "teacher_sha256": teacher_sha256,
        "seeds": list(seeds),
        "cases": list(cases),
        "loads": [float(x) for x in loads],
        "extra": extra or {},
    }
    out = {METADATA_KEY: json.dumps(meta, sort_keys=True).encode()}
    names = list(feature_names) if feature_names is not None else compact_feature_names(spec)
    if names is not None and len(names) == spec.compact_dim:
        out[FEATURES_KEY] = json.dumps(names).encode()
    return out


def compact_feature_names(spec: LibrarySpec) -> list[str] | None:
    """Name of every position of the ``compact`` column, from the declared feature layout:
    ``BLOCK.COLUMN`` (``request.…``, ``history_stats.…``, ``network_stats.…``) and
    ``candidates[a].COLUMN`` for action ``a``'s row of the candidate table; None when the
    spec's compact width is not that layout's (rows of another env, such as the access one)."""
    layout = compact_layout(spec.catalog, spec.n_actions)
    if layout.size != spec.compact_dim:
        return None
    return [
        f"{b.name}[{r}].{c}" if b.rows > 1 else f"{b.name}.{c}"
        for b in layout.blocks
        for r in range(b.rows)
        for c in b.columns
    ]


def decode_metadata(raw: dict[bytes, bytes] | None, where: str) -> dict[str, Any]:
    """Parse the ``pcnalloc`` metadata of a library file; raise :class:`LibraryError`."""
    if not raw or METADATA_KEY not in raw:
        raise LibraryError(f"{where} has no pcnalloc metadata; it is not a trajectory library")
    meta = json.loads(raw[METADATA_KEY])
    v = meta.get("schema_version")
    if v not in READABLE_VERSIONS:
        raise LibraryError(
            f"{where} has library schema version {v!r}; this pcnalloc reads "
            + ", ".join(map(str, READABLE_VERSIONS))
        )
    return meta
