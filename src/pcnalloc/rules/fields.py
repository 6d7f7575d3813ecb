"""The vocabulary of rule predicates: field names and types, operators and class attributes.

A predicate leaf ``{field, op, value}`` names a per-action field (:data:`ACTION_FIELDS`), a
per-request field (:data:`REQUEST_FIELDS`) or, in rules on the reject action, a derived one
(:data:`DERIVED_FIELDS`); the field's type fixes the ops it accepts (:data:`OPS_BY_TYPE`).
Validation is :mod:`pcnalloc.rules.schema`, compilation :mod:`pcnalloc.rules.engine`.
"""

BOOL, NUM, CLASS, ZONE, SLICE = "bool", "number", "class", "zone", "slice"
ZONE_NAMES = ("I", "II", "III", "IV")
SLICE_NAMES = ("rt", "nrt", "mgmt")

ACTION_FIELDS: dict[str, str] = {
    "is_reject": BOOL,
    "present": BOOL,
    "grant": NUM,
    "kbps": NUM,
    "latency_ms": NUM,
    "latency_over_bound": NUM,
    "residual_kbps": NUM,
    "residual_with_preemption_kbps": NUM,
    "fits": BOOL,
    "fits_with_preemption": BOOL,
    "needs_preemption": BOOL,
    "has_backup": BOOL,
    "min_trust": NUM,
    "util_after": NUM,
    "hops": NUM,
    "slice": SLICE,
}
"""Per-action fields (arrays of shape (A,)) and their types. ``slice`` is the capacity pool an
action reserves in; when the evaluation does not provide it the engine fills in the class's
own pool, because the environment only ever reserves there (isolation by construction)."""

REQUEST_FIELDS: dict[str, str] = {
    "class": CLASS,
    "zone": ZONE,
    "priority": NUM,
    "protected": BOOL,
    "emergency": BOOL,
    "region": NUM,
}
"""Per-request fields (scalars, folded into constants when a rule is compiled)."""

DERIVED_FIELDS: dict[str, str] = {"admissible_exists": BOOL}
"""Only in rules that apply to the reject action: some path action passes every
critical/hard rule (pre-emption actions included)."""

CLASS_ATTRS: dict[str, str] = {
    "min_grant": NUM,
    "max_latency_ms": NUM,
    "bandwidth_kbps": NUM,
    "priority": NUM,
    "slice": SLICE,
    "zone": ZONE,
    "protected": BOOL,
}
"""Attributes of the request's class usable as ``value: {class: ATTR}``."""

OPS = ("lt", "le", "gt", "ge", "eq", "ne", "in")
OPS_BY_TYPE = {
    BOOL: ("eq", "ne"),
    NUM: OPS,
    CLASS: ("eq", "ne", "in"),
    ZONE: ("eq", "ne", "in"),
    SLICE: ("eq", "ne", "in"),
}
