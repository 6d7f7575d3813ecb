"""The declared feature layout: named blocks and columns of the compact vector and candidate table.

One place says what every position means, the way pandapower declares each element table as
an ordered list of ``(column, dtype)`` pairs (``pandapower.create._preserve_dtypes`` and the
table schemas of ``create_empty_network``) and every function reads columns by name.
Everything that writes or reads these vectors derives its offsets from here: the candidate
kernel (:mod:`pcnalloc.envs.features`), the observation builder
(:mod:`pcnalloc.envs.observation`), the edge agent, the artifact manifest (which serialises
the layout, :meth:`FeatureLayout.to_dict`, and whose loader refuses an artifact whose layout
differs from the running code's) and the students (:mod:`pcnalloc.distill.students`).

Tables declared here:

- :data:`CANDIDATE_COLUMNS` — the (A, F) candidate table, one row per action (float32);
- :data:`FIELD_COLUMNS` — the per-action quantities rules read (``Evaluation.fields``), with
  their dtypes, stored as one matrix per dtype (:data:`FIELD_TABLES`);
- the compact vector ``[request | candidates (A·F, action-major) | history statistics |
  network statistics]`` (:func:`compact_layout`), whose request block names the catalog's
  classes, so the layout is a function of (class names, A).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pcnalloc.traffic.catalog import ZONES
from pcnalloc.traffic.generator import KINDS

LAYOUT_FORMAT = "pcnalloc-feature-layout/1"

CANDIDATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency_over_bound", "worst of primary/backup latency ÷ class bound, ≤ 5"),
    ("hops_div10", "hops of primary + backup ÷ 10"),
    ("residual_after_frac", "(bottleneck residual − granted kb/s) ÷ bottleneck capacity, ±1"),
    ("max_util_after", "max link utilisation after admission, ≤ 1.5"),
    ("min_trust", "lowest trust of a site on the route(s)"),
    ("protection_available", "1 if a disjoint backup exists"),
    ("grant_fraction", "granted share of the requested bandwidth"),
    ("needs_preemption", "1 if only pre-emption makes it fit"),
    ("valid", "1 if the action mask allows it"),
    ("is_reject", "1 on the reject action"),
    ("size_frac", "granted kb/s ÷ bottleneck capacity, ≤ 1"),
)
"""Candidate table columns (float32), with what each holds; absent routes are all zero."""

CANDIDATE_FEATURES: tuple[str, ...] = tuple(c for c, _ in CANDIDATE_COLUMNS)

FIELD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("is_reject", "bool"),
    ("present", "bool"),
    ("grant", "float64"),
    ("kbps", "int64"),
    ("latency_ms", "float64"),
    ("latency_over_bound", "float64"),
    ("residual_kbps", "int64"),
    ("residual_with_preemption_kbps", "int64"),
    ("fits", "bool"),
    ("fits_with_preemption", "bool"),
    ("needs_preemption", "bool"),
    ("has_backup", "bool"),
    ("min_trust", "float64"),
    ("util_after", "float64"),
    ("hops", "int64"),
)
"""Per-action fields rules may test (each shape (A,)), in :data:`FIELDS` order, and dtypes."""

FIELDS: tuple[str, ...] = tuple(c for c, _ in FIELD_COLUMNS)

FIELD_TABLES: tuple[str, ...] = ("bool", "int64", "float64")
"""The per-dtype matrices (N_dtype, A) the kernel writes the fields into, in this order."""

FIELD_WHERE: dict[str, tuple[int, int]] = {}
"""Field name → (table index in :data:`FIELD_TABLES`, row in that table)."""
for _name, _dtype in FIELD_COLUMNS:
    _t = FIELD_TABLES.index(_dtype)
    FIELD_WHERE[_name] = (_t, sum(1 for w in FIELD_WHERE.values() if w[0] == _t))
FIELD_ROWS: tuple[int, ...] = tuple(FIELD_WHERE[n][1] for n in FIELDS)
"""Row of each field (in :data:`FIELDS` order) within its dtype's table."""
FIELD_TABLE_SIZES: tuple[int, ...] = tuple(
    sum(1 for t, _ in FIELD_WHERE.values() if t == i) for i in range(len(FIELD_TABLES))
)

HISTORY_STATS: tuple[str, ...] = (
    "accept_rate",
    "mean_grant",
    "restoration_share",
    "critical_share",
    "log_gap",
)
"""Means over the last W requests (the history block of the compact vector)."""

NETWORK_STATS: tuple[str, ...] = (
    "mean_util_rt",
    "mean_util_nrt",
    "mean_util_mgmt",
    "max_util_rt",
    "max_util_nrt",
    "max_util_mgmt",
    "failed_frac",
    "emergency",
)
"""Network-wide statistics (the last block of the compact vector)."""

REQUEST_TAIL: tuple[str, ...] = (
    "log_size",
    "log_bound",
    "priority",
    "value",
    *(f"zone={z}" for z in ZONES),
    "protected",
    "log_holding",
    *(f"kind={k}" for k in KINDS),
    "emergency_at_src",
    "src_is_control_center",
    "dst_is_control_center",
    "time_of_day_sin",
    "time_of_day_cos",
)
"""Request columns after the class one-hot (``class=NAME`` per catalog class)."""

NODE_FEATURES: tuple[str, ...] = (
    "trust",
    "is_control_center",
    "is_edge_controller",
    "region_frac",
    "degree_frac",
    "emergency",
    "failed_link_frac",
)
"""Graph node table columns (full observation)."""

LINK_FEATURES: tuple[str, ...] = (
    "residual_rt",
    "residual_nrt",
    "residual_mgmt",
    "queue_rt_ms",
    "queue_nrt_ms",
    "queue_mgmt_ms",
    "capacity_log10_gbps",
    "propagation_ms",
    "failed",
    "min_end_trust",
)
"""Graph link table columns (full observation)."""


def request_columns(class_names: Sequence[str]) -> tuple[str, ...]:
    """Columns of the request block: the class one-hot, then :data:`REQUEST_TAIL`."""
    return (*(f"class={n}" for n in class_names), *REQUEST_TAIL)


@dataclass(frozen=True)
class Block:
    """A named block of the compact vector: ``rows`` × ``columns`` floats, row-major.

    Attributes:
        name: block name (``request``, ``candidates``, ``history_stats``, ``network_stats``).
        columns: column names; a block with ``rows`` > 1 repeats them per row (per action).
        rows: 1, or A for the candidate table.
        offset: index of the block's first entry in the vector.
    """

    name: str
    columns: tuple[str, ...]
    rows: int
    offset: int

    @property
    def size(self) -> int:
        return self.rows * len(self.columns)

    @property
    def stop(self) -> int:
        return self.offset + self.size

    def index(self, column: str, row: int = 0) -> int:
        """Position in the vector of ``column`` (of row ``row``)."""
        return self.offset + row * len(self.columns) + self.columns.index(column)


@dataclass(frozen=True)
class FeatureLayout:
    """The compact vector's blocks in order (see :func:`compact_layout`).

    Attributes:
        blocks: the blocks, contiguous from offset 0.
    """

    blocks: tuple[Block, ...]

    @property
    def size(self) -> int:
        """D, the vector's width."""
        return self.blocks[-1].stop if self.blocks else 0

    def block(self, name: str) -> Block:
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no block {name!r}; blocks: {', '.join(b.name for b in self.blocks)}")

    def slice(self, name: str) -> slice:
        b = self.block(name)
        return slice(b.offset, b.stop)

    def index(self, block: str, column: str, row: int = 0) -> int:
        """Position of ``column`` (row ``row``) of ``block`` in the vector."""
        return self.block(block).index(column, row)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the artifact manifest (block order, names, sizes, columns)."""
        return {
            "format": LAYOUT_FORMAT,
            "size": self.size,
            "blocks": [
                {
                    "name": b.name,
                    "offset": b.offset,
                    "rows": b.rows,
                    "size": b.size,
                    "columns": list(b.columns),
                }
                for b in self.blocks
            ],
        }

    def diff(self, other: Any) -> list[str]:
        """What differs between this layout and ``other`` (a layout or its :meth:`to_dict`),
        as short phrases naming the first differing block and column; empty when equal."""
        theirs = other.to_dict() if isinstance(other, FeatureLayout) else other
        ours = self.to_dict()
        if not isinstance(theirs, dict):
            return [f"layout is {type(theirs).__name__}, not a mapping"]
        out = []
        for key in ("format", "size"):
            if theirs.get(key) != ours[key]:
                out.append(f"{key} {theirs.get(key)!r} (code: {ours[key]!r})")
        tb = theirs.get("blocks")
        if not isinstance(tb, list):
            return [*out, "blocks missing"]
        names_t = [b.get("name") if isinstance(b, dict) else None for b in tb]
        names_o = [b["name"] for b in ours["blocks"]]
        if names_t != names_o:
            out.append(f"block order {names_t} (code: {names_o})")
            return out
        for bt, bo in zip(tb, ours["blocks"], strict=True):
            for key in ("offset", "rows", "size"):
                if bt.get(key) != bo[key]:
                    out.append(f"{bo['name']}.{key} {bt.get(key)!r} (code: {bo[key]!r})")
            ct, co = bt.get("columns"), bo["columns"]
            if ct != co:
                if not isinstance(ct, list) or len(ct) != len(co):
                    out.append(f"{bo['name']}: {_n(ct)} columns (code: {len(co)})")
                else:
                    i = next(i for i, (a, b) in enumerate(zip(ct, co, strict=True)) if a != b)
                    out.append(f"{bo['name']} column {i} is {ct[i]!r} (code: {co[i]!r})")
        return out


def _n(x: Any) -> str:
    return str(len(x)) if isinstance(x, list) else "no"


def compact_layout(class_names: Sequence[str], n_actions: int) -> FeatureLayout:
    """The compact vector for a catalog with ``class_names`` and A = ``n_actions`` actions."""
    parts = (
        ("request", request_columns(class_names), 1),
        ("candidates", CANDIDATE_FEATURES, int(n_actions)),
        ("history_stats", HISTORY_STATS, 1),
        ("network_stats", NETWORK_STATS, 1),
    )
    blocks, off = [], 0
    for name, cols, rows in parts:
        blocks.append(Block(name, tuple(cols), rows, off))
        off += rows * len(cols)
    return FeatureLayout(tuple(blocks))


__all__ = [
    "CANDIDATE_COLUMNS",
    "CANDIDATE_FEATURES",
    "FIELDS",
    "FIELD_COLUMNS",
    "FIELD_ROWS",
    "FIELD_TABLES",
    "FIELD_TABLE_SIZES",
    "FIELD_WHERE",
    "HISTORY_STATS",
    "LAYOUT_FORMAT",
    "LINK_FEATURES",
    "NETWORK_STATS",
    "NODE_FEATURES",
    "REQUEST_TAIL",
    "Block",
    "FeatureLayout",
    "compact_layout",
    "request_columns",
]
