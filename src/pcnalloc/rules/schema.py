"""Declarative safety rules: YAML schema, validation with teaching errors, merging, hashing.

A rule says when an action VIOLATES it. Its predicate is a tree of leaves
``{field, op, value}`` joined by ``all:`` / ``any:`` / ``not:``; nothing a user writes is ever
evaluated as code. Fields are the per-action quantities of
:data:`pcnalloc.envs.features.FIELDS` (plus ``slice``) and the request quantities ``class``,
``zone``, ``priority``, ``protected``, ``emergency`` and ``region``. A value is a literal, a
rule-set parameter ``{param: NAME}``, an attribute of the request's class ``{class: ATTR}``,
or a per-class table ``{per_class: {CLASS: literal, ...}, default: <value>}``.

The packaged default set lives in ``pcnalloc/data/rules.yaml``; a user file overrides soft
rules, parameters and emergency priorities by id and adds new ones (``extends: none`` drops the
packaged soft rules and emergency priorities).

Safety floor (DESIGN §7): the packaged critical and hard rules can never be disabled, replaced
or loosened by a user file. A user file may add rules (a rule only ever forbids more, so an
added rule can only tighten the mask) and tighten the floor parameters of
:data:`FLOOR_PARAMS`; anything else that touches the floor is a :class:`RuleError` naming the
rule or parameter. The floor is kept under ``extends: none`` too.
The field vocabulary is :mod:`pcnalloc.rules.fields`; compilation into vectorised numpy
checks is :mod:`pcnalloc.rules.engine`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pcnalloc.errors import PcnallocError, choices
from pcnalloc.rules.fields import (
    ACTION_FIELDS,
    BOOL,
    CLASS,
    CLASS_ATTRS,
    DERIVED_FIELDS,
    NUM,
    OPS_BY_TYPE,
    REQUEST_FIELDS,
    SLICE,
    SLICE_NAMES,
    ZONE,
    ZONE_NAMES,
)
from pcnalloc.rules.fields import OPS as OPS

SEVERITIES = ("critical", "hard", "soft")
APPLIES_TO = ("paths", "reject")
EMERGENCY = ("any", "active", "inactive")
RULE_KEYS = (
    "id",
    "description",
    "severity",
    "scope",
    "violates",
    "weight",
    "applies_to",
    "enabled",
)
SCOPE_KEYS = ("classes", "zones", "regions", "emergency", "priority_min", "priority_max")
FILE_KEYS = ("version", "extends", "params", "emergency_priorities", "rules")
FILE_VERSIONS = (1,)
"""Rule file format versions this engine reads (``version:`` may be left out: the newest)."""
PRIO_KEYS = ("id", "description", "classes", "priority", "enabled")
FLOOR_SEVERITIES = ("critical", "hard")
FLOOR_PARAMS: dict[str, int] = {
    "trust_threshold": +1,
    "critical_latency_margin": -1,
    "critical_priority": +1,
}
"""Parameters the packaged floor rules read, with the direction that tightens them (+1: a user
file may only raise it, −1: only lower it)."""
PACKAGED_SOURCE = "packaged:rules.yaml"


class RuleError(PcnallocError):
    """A malformed rule file or rule; the message names the rule id, the bad item and the
    accepted values."""


@dataclass(frozen=True)
class Rule:
    """One validated rule.

    Attributes:
        id: unique name, used in verdicts, explanations and the audit log.
        description: what the rule protects, for operators.
        severity: ``critical`` or ``hard`` forbid an action; ``soft`` only penalises it.
        scope: which requests it applies to (keys of :data:`SCOPE_KEYS`; absent = all).
        violates: the predicate tree (plain data, validated).
        weight: score penalty per violation (soft rules).
        applies_to: ``paths`` (the K·L path actions) or ``reject`` (the reject action).
        enabled: a user file may switch a packaged rule off by id.
    """

    id: str
    description: str
    severity: str
    scope: dict[str, Any]
    violates: Any
    weight: float = 1.0
    applies_to: str = "paths"
    enabled: bool = True


@dataclass(frozen=True)
class PriorityRule:
    """While a grid emergency is active in the request's region, ``classes`` take
    ``priority`` (0 = highest) as their setup/hold priority; the base priority returns after."""

    id: str
    description: str
    classes: tuple[str, ...]
    priority: int
    enabled: bool = True


@dataclass(frozen=True)
class RuleSet:
    """A validated, merged rule set. Build with :meth:`load` or :meth:`from_mapping`."""

    rules: tuple[Rule, ...]
    params: dict[str, Any] = field(default_factory=dict)
    emergency_priorities: tuple[PriorityRule, ...] = ()
    sources: tuple[str, ...] = ()
    floor: frozenset[str] = frozenset()
    """Ids of the packaged critical/hard rules that a user file cannot disable or loosen."""

    @property
    def active_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def rule(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise RuleError(
            f"unknown rule id {rule_id!r}; accepted: {choices(r.id for r in self.rules)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-data form (what :attr:`sha256` hashes)."""
        return {
            "params": dict(sorted(self.params.items())),
            "emergency_priorities": [
                p.__dict__ | {"classes": list(p.classes)} for p in self.emergency_priorities
            ],
            "rules": [r.__dict__ for r in self.rules],
        }

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of the merged set (formatting and comments ignored).

        Computed once per (immutable) set: the edge agent and the guard read it on every
        decision."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_params(self, **params: Any) -> RuleSet:
        """A copy with some parameters replaced (e.g. the env's trust threshold)."""
        unknown = set(params) - set(self.params)
        if unknown:
            raise RuleError(
                f"unknown rule parameter(s) {sorted(unknown)}; accepted: {choices(self.params)}"
            )
        return replace(self, params={**self.params, **params})

    def for_classes(self, names: Any) -> RuleSet:
        """A copy without the class-scoped rules and emergency priorities that name none of
        ``names`` (the packaged defaults refer to the packaged catalog; a replacement catalog
        keeps every rule that still applies). Class lists are cut to the known names."""
        known = set(names)
        rules = []
        for r in self.rules:
            scoped = r.scope.get("classes")
            if scoped is not None:
                keep = tuple(c for c in scoped if c in known)
                if not keep:
                    continue
                r = replace(r, scope={**r.scope, "classes": list(keep)})
            rules.append(r)
        prio = tuple(
            replace(p, classes=tuple(c for c in p.classes if c in known))
            for p in self.emergency_priorities
            if any(c in known for c in p.classes)
        )
        return replace(
            self, rules=tuple(rules), params=dict(self.params), emergency_priorities=prio
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        """Load the packaged default set, then merge the user file ``path`` over it.

        Args:
            path: a rule YAML file, or None for the packaged default only.

        Raises:
            RuleError: for a missing file, malformed YAML or any invalid rule.
        """
        base = cls.packaged()
        if path is None:
            return base
        user = _read(Path(path))
        extends = user.get("extends", "default")
        if extends not in ("default", "none"):
            raise RuleError(f"{path}: extends must be 'default' or 'none', got {extends!r}")
        if extends == "none":  # the safety floor stays; soft rules and priorities go
            base = replace(
                base,
                rules=tuple(r for r in base.rules if r.id in base.floor),
                emergency_priorities=(),
            )
        return base.merged(cls.from_mapping(user, source=str(path), partial=True))

    @classmethod
    def packaged(cls) -> RuleSet:
        """The packaged default set; its critical/hard rules form the safety floor."""
        rs = cls.from_mapping(_read_default(), source=PACKAGED_SOURCE)
        floor = frozenset(r.id for r in rs.rules if r.severity in FLOOR_SEVERITIES)
        return replace(rs, floor=floor)

    def merged(self, other: RuleSet) -> RuleSet:
        """``other`` over ``self``: same ids replace (in place), new ids append.

        Raises:
            RuleError: ``other`` disables, replaces or loosens a rule of ``self``'s safety
                floor, or loosens a floor parameter (:data:`FLOOR_PARAMS`).
        """
        where = other.sources[0] if other.sources else "<rules>"
        mine = {r.id: r for r in self.rules}
        for r in other.rules:
            if r.id in self.floor:
                _check_floor_rule(mine.get(r.id), r, where)
        for name, direction in FLOOR_PARAMS.items():
            if name in other.params and name in self.params:
                old, new = float(self.params[name]), float(other.params[name])
                if (new - old) * direction < 0:
                    way = "raised" if direction > 0 else "lowered"
                    raise RuleError(
                        f"{where}: parameter {name!r} = {other.params[name]!r} loosens the "
                        f"safety floor ({self.params[name]!r}); it may only be {way}"
                    )
        rules = {r.id: r for r in self.rules}
        rules.update({r.id: r for r in other.rules})
        prios = {p.id: p for p in self.emergency_priorities}
        prios.update({p.id: p for p in other.emergency_priorities})
        unknown = set(other.params) - set(self.params)
        if unknown:
            raise RuleError(
                f"{other.sources[0]}: unknown parameter(s) {sorted(unknown)}; "
                f"accepted: {choices(self.params)}"
            )
        return RuleSet(
            tuple(rules.values()),
            {**self.params, **other.params},
            tuple(prios.values()),
            self.sources + other.sources,
            self.floor,
        )

    @classmethod
    def from_mapping(
        cls, data: Any, *, source: str = "<mapping>", partial: bool = False
    ) -> RuleSet:
        """Validate plain data (a parsed YAML file) into a rule set.

        Args:
            data: mapping with ``rules`` and optional ``params``, ``emergency_priorities``.
            source: name used in error messages.
            partial: an override file (parameters it refers to may come from the base set).
        """
        if not isinstance(data, dict):
            raise RuleError(f"{source}: a rule file must hold a mapping, got {type(data).__name__}")
        _keys(data, FILE_KEYS, f"{source}: top level")
        version = data.get("version", FILE_VERSIONS[-1])
        if isinstance(version, bool) or version not in FILE_VERSIONS:
            raise RuleError(
                f"{source}: unknown rule file version {version!r}; accepted: "
                f"{', '.join(map(str, FILE_VERSIONS))}"
            )
        params = data.get("params") or {}
        if not isinstance(params, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()
        ):
            raise RuleError(f"{source}: params must map names to numbers, got {params!r}")
        for name, v in params.items():
            if not math.isfinite(v):
                raise RuleError(f"{source}: parameter {name!r} must be a finite number, got {v!r}")
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise RuleError(f"{source}: rules must be a list, got {type(raw_rules).__name__}")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_rules):
            rule = _rule(raw, i, source, params if not partial else None)
            if rule.id in seen:
                raise RuleError(f"{source}: rule {rule.id!r}: duplicate id (ids must be unique)")
            seen.add(rule.id)
            rules.append(rule)
        prios = [_prio(p, i, source) for i, p in enumerate(data.get("emergency_priorities") or [])]
        if len({p.id for p in prios}) != len(prios):
            raise RuleError(f"{source}: duplicate emergency_priorities id")
        return cls(tuple(rules), dict(params), tuple(prios), (source,))


def _check_floor_rule(base: Rule | None, new: Rule, where: str) -> None:
    """Refuse a user rule that would disable, replace or loosen the packaged floor rule
    ``base``. Restating it unchanged, editing its description or raising hard to critical
    is accepted; everything else is not, because no general test can tell a tighter
    predicate from a looser one — a user who wants more adds a rule with a new id."""
    if base is None:  # pragma: no cover - the floor is a subset of the base's ids
        return
    changed = [
        k for k in ("scope", "violates", "applies_to") if getattr(base, k) != getattr(new, k)
    ]
    if not new.enabled:
        changed.insert(0, "enabled: false")
    if new.severity != base.severity and not (
        base.severity == "hard" and new.severity == "critical"
    ):
        changed.append(f"severity {new.severity}")
    if changed:
        raise RuleError(
            f"{where}: rule {new.id!r} belongs to the packaged safety floor and cannot be "
            f"disabled or loosened (changed: {', '.join(changed)}); add a rule with a new id "
            "to tighten it"
        )


# ---------------------------------------------------------------------------- reading
def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise RuleError(f"rule file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise RuleError(
            f"rule file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})"
        ) from None
    except yaml.YAMLError as err:
        msg = str(err).replace("\n", " ")
        raise RuleError(f"malformed YAML in rule file {str(path)!r}: {msg}") from None
    except RecursionError:
        raise RuleError(f"rule file {str(path)!r} is nested too deeply") from None
    if not isinstance(data, dict):
        raise RuleError(f"rule file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def _read_default() -> dict[str, Any]:
    src = resources.files("pcnalloc") / "data" / "rules.yaml"
    with resources.as_file(src) as p:
        return _read(Path(p))


# ---------------------------------------------------------------------------- validation
def _keys(d: dict, accepted: tuple[str, ...], where: str) -> None:
    bad = [k for k in d if k not in accepted]
    if bad:
        raise RuleError(f"{where}: unknown key {bad[0]!r}; accepted: {choices(accepted)}")


def _rule(raw: Any, i: int, source: str, params: dict | None) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{source}: rules[{i}] must be a mapping, got {raw!r}")
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        raise RuleError(f"{source}: rules[{i}] needs a non-empty string id, got {rid!r}")
    where = f"{source}: rule {rid!r}"
    _keys(raw, RULE_KEYS, where)
    sev = raw.get("severity")
    if sev not in SEVERITIES:
        raise RuleError(f"{where}: severity {sev!r} is invalid; accepted: {choices(SEVERITIES)}")
    applies = raw.get("applies_to", "paths")
    if applies not in APPLIES_TO:
        raise RuleError(f"{where}: applies_to {applies!r}; accepted: {choices(APPLIES_TO)}")
    if applies == "reject" and sev == "soft":
        raise RuleError(f"{where}: applies_to 'reject' needs severity critical or hard, got 'soft'")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise RuleError(f"{where}: weight must be a number ≥ 0, got {weight!r}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}: enabled must be true or false, got {enabled!r}")
    desc = raw.get("description", "")
    if not isinstance(desc, str):
        raise RuleError(f"{where}: description must be a string, got {desc!r}")
    scope = _scope(raw.get("scope") or {}, where)
    if "violates" not in raw:
        raise RuleError(f"{where}: missing 'violates' predicate")
    fields = dict(ACTION_FIELDS, **REQUEST_FIELDS)
    if applies == "reject":
        fields.update(DERIVED_FIELDS)
    _predicate(raw["violates"], f"{where}: violates", fields, params)
    return Rule(rid, desc, sev, scope, raw["violates"], float(weight), applies, enabled)


def _str_list(v: Any, where: str, accepted: tuple[str, ...] | None = None) -> list:
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise RuleError(f"{where}: must be a non-empty list of names, got {v!r}")
    if accepted is not None:
        for x in v:
            if x not in accepted:
                raise RuleError(f"{where}: unknown value {x!r}; accepted: {choices(accepted)}")
    return v


def _scope(s: Any, where: str) -> dict[str, Any]:
    if not isinstance(s, dict):
        raise RuleError(f"{where}: scope must be a mapping, got {s!r}")
    _keys(s, SCOPE_KEYS, f"{where}: scope")
    out = dict(s)
    if "classes" in s:
        _str_list(s["classes"], f"{where}: scope.classes")
    if "zones" in s:
        _str_list(s["zones"], f"{where}: scope.zones", ZONE_NAMES)
    if "regions" in s:
        r = s["regions"]
        if not isinstance(r, list) or not r or not all(_is_int(x) for x in r):
            raise RuleError(f"{where}: scope.regions must be a list of region indices, got {r!r}")
    if s.get("emergency", "any") not in EMERGENCY:
        raise RuleError(
            f"{where}: scope.emergency {s['emergency']!r}; accepted: {choices(EMERGENCY)}"
        )
    for k in ("priority_min", "priority_max"):
        if k in s and not _is_int(s[k]):
            raise RuleError(f"{where}: scope.{k} must be an integer priority, got {s[k]!r}")
    return out


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


MAX_PREDICATE_DEPTH = 16
"""Deepest all/any/not nesting a rule predicate may have (deeper trees are refused)."""


def _predicate(
    node: Any, where: str, fields: dict[str, str], params: dict | None, depth: int = 0
) -> None:
    if depth > MAX_PREDICATE_DEPTH:
        raise RuleError(
            f"{where.split(': violates')[0]}: predicate nested deeper than "
            f"{MAX_PREDICATE_DEPTH} levels; flatten it"
        )
    if not isinstance(node, dict):
        raise RuleError(f"{where}: a predicate must be a mapping, got {node!r}")
    if set(node) & {"all", "any", "not"}:
        if len(node) != 1:
            raise RuleError(f"{where}: a combinator takes exactly one key, got {sorted(node)}")
        ((kind, sub),) = node.items()
        if kind == "not":
            _predicate(sub, f"{where}.not", fields, params, depth + 1)
            return
        if not isinstance(sub, list) or not sub:
            raise RuleError(f"{where}.{kind}: must be a non-empty list of predicates, got {sub!r}")
        for j, child in enumerate(sub):
            _predicate(child, f"{where}.{kind}[{j}]", fields, params, depth + 1)
        return
    _keys(node, ("field", "op", "value"), where)
    f = node.get("field")
    if f not in fields:
        raise RuleError(f"{where}: unknown field {f!r}; accepted: {', '.join(sorted(fields))}")
    ftype = fields[f]
    op = node.get("op")
    if op not in OPS_BY_TYPE[ftype]:
        raise RuleError(
            f"{where}: op {op!r} not valid for {ftype} field {f!r}; "
            f"accepted: {choices(OPS_BY_TYPE[ftype])}"
        )
    if "value" not in node:
        raise RuleError(f"{where}: missing value for field {f!r}")
    _value(node["value"], op, ftype, f"{where}: value for {f!r}", params)


def _value(v: Any, op: str, ftype: str, where: str, params: dict | None) -> None:
    if isinstance(v, dict):
        if "param" in v:
            _keys(v, ("param",), where)
            if ftype != NUM or op == "in":
                raise RuleError(f"{where}: {{param}} values are numbers, for number fields only")
            if params is not None and v["param"] not in params:
                raise RuleError(
                    f"{where}: unknown param {v['param']!r}; accepted: {choices(params)}"
                )
            return
        if "class" in v:
            _keys(v, ("class",), where)
            attr = v["class"]
            if attr not in CLASS_ATTRS:
                raise RuleError(
                    f"{where}: unknown class attribute {attr!r}; accepted: {choices(CLASS_ATTRS)}"
                )
            if CLASS_ATTRS[attr] != ftype or op == "in":
                raise RuleError(
                    f"{where}: class attribute {attr!r} is a {CLASS_ATTRS[attr]}, "
                    f"the field is a {ftype} compared with {op!r}"
                )
            return
        if "per_class" in v:
            _keys(v, ("per_class", "default"), where)
            table = v["per_class"]
            if not isinstance(table, dict) or not table:
                raise RuleError(f"{where}: per_class must map class names to values, got {table!r}")
            for name, x in table.items():
                _value(x, op, ftype, f"{where}.per_class[{name}]", params)
            if "default" not in v:
                raise RuleError(f"{where}: per_class needs a default value")
            _value(v["default"], op, ftype, f"{where}.default", params)
            return
        raise RuleError(
            f"{where}: a mapping value must be {{param: NAME}}, {{class: ATTR}} or "
            f"{{per_class: ..., default: ...}}, got {v!r}"
        )
    if op == "in":
        if not isinstance(v, list) or not v:
            raise RuleError(f"{where}: op 'in' needs a non-empty list, got {v!r}")
        for x in v:
            _literal(x, ftype, where)
        return
    _literal(v, ftype, where)


def _literal(x: Any, ftype: str, where: str) -> None:
    if ftype == BOOL and not isinstance(x, bool):
        raise RuleError(f"{where}: expected true or false, got {x!r}")
    if ftype == NUM and not _is_num(x):
        raise RuleError(f"{where}: expected a number, got {x!r}")
    if ftype == ZONE and x not in ZONE_NAMES:
        raise RuleError(f"{where}: unknown zone {x!r}; accepted: {choices(ZONE_NAMES)}")
    if ftype == SLICE and x not in SLICE_NAMES:
        raise RuleError(f"{where}: unknown slice {x!r}; accepted: {choices(SLICE_NAMES)}")
    if ftype == CLASS and not isinstance(x, str):
        raise RuleError(f"{where}: expected a class name, got {x!r}")


def _prio(raw: Any, i: int, source: str) -> PriorityRule:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
        raise RuleError(f"{source}: emergency_priorities[{i}] needs a mapping with an id")
    where = f"{source}: emergency priority {raw['id']!r}"
    _keys(raw, PRIO_KEYS, where)
    classes = _str_list(raw.get("classes"), f"{where}: classes")
    p = raw.get("priority")
    if not isinstance(p, int) or isinstance(p, bool) or not 0 <= p <= 7:
        raise RuleError(f"{where}: priority must be an integer in 0..7, got {p!r}")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RuleError(f"{where}: enabled must be true or false, got {enabled!r}")
    return PriorityRule(raw["id"], str(raw.get("description", "")), tuple(classes), p, enabled)
