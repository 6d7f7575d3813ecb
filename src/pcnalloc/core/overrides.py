"""Dotted overrides (``--set traffic.events.faults_per_hour=0``) checked against a config model.

Every verb that reads a config file takes ``--set KEY.PATH=VALUE`` (repeatable). The value is
parsed as YAML (``0``, ``1.5``, ``true``, ``[1.0, 1.5]``, ``null``), the dotted key is walked
through the stage's pydantic model, and both are checked before anything is validated as a
whole, so a bad key or value is one :class:`~pcnalloc.errors.ConfigError` line that names the
dotted key and what it accepts. The overrides are applied after the file (and after the
verb's own flags) and before validation, so the model's own checks still run on the result.

Written here rather than taken from a library (Hydra, OmegaConf) because the configs are
pydantic models already: walking their fields gives the accepted keys and the field
validators give the accepted values, with no second schema to keep in step.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from pcnalloc.errors import ConfigError


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field annotation can hold (``Model``, ``Model | None`` …)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) or origin is Annotated:
        return [m for a in typing.get_args(annotation) for m in _models_in(a)]
    return []


def _is_mapping(annotation: Any) -> bool:
    """Whether a field holds a free mapping (any sub-key is the field's own business)."""
    if annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping) or annotation is dict:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return False


def _field(
    model: type[BaseModel],
    parts: Sequence[str],
    dotted: str,
    sections: Mapping[str, type[BaseModel]],
) -> FieldInfo | None:
    """The field a dotted key names (None under a free mapping); ConfigError if none."""
    current: type[BaseModel] = model
    for i, part in enumerate(parts):
        fields = current.model_fields
        if part not in fields:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(
                f"--set {dotted}: no key {part!r} under {where}; accepted: "
                + ", ".join(sorted(fields))
            )
        info = fields[part]
        if i == len(parts) - 1:
            return info
        models = _models_in(info.annotation)
        if models:
            current = models[0]
            continue
        if _is_mapping(info.annotation):
            section = sections.get(".".join(parts[: i + 1]))
            if section is None:
                return None
            current = section
            continue
        raise ConfigError(
            f"--set {dotted}: {'.'.join(parts[: i + 1])} is a value, not a section; "
            f"set it as --set {'.'.join(parts[: i + 1])}=VALUE"
        )
    return None  # pragma: no cover - parts is never empty


def _accepted(info: FieldInfo) -> str:
    """What a field accepts, in words: its type and constraints."""
    ann = info.annotation
    text = getattr(ann, "__name__", None) if isinstance(ann, type) else None
    text = text or str(ann).replace("typing.", "")
    bounds = [_bound(m) for m in info.metadata]
    return text + (f" {' and '.join(bounds)}" if bounds else "")


_SIGNS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "min_length": "length ≥"}


def _bound(meta: Any) -> str:
    """One constraint in words (``Gt(gt=0)`` → ``> 0``); anything else as pydantic writes it."""
    for attr, sign in _SIGNS.items():
        if hasattr(meta, attr):
            return f"{sign} {getattr(meta, attr)}"
    if hasattr(meta, "max_length"):
        return f"length ≤ {meta.max_length}"
    return str(meta)


def parse_sets(
    items: Sequence[str] | None,
    model: type[BaseModel],
    sections: Mapping[str, type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """Parse ``KEY.PATH=VALUE`` overrides into one nested mapping, each checked on ``model``.

    Args:
        items: the ``--set`` values, in the order given (a later one wins).
        model: the stage's config model the dotted keys are walked through.
        sections: models for fields typed as free mappings, by dotted key
            (``{"teacher": TeacherConfig}`` for the run config's teacher overrides); any
            sub-key of an unlisted mapping is accepted as it stands.

    Returns:
        Nested overrides, ``{"traffic": {"events": {"faults_per_hour": 0}}}``.

    Raises:
        ConfigError: one line naming the dotted key and the accepted keys or values.
    """
    out: dict[str, Any] = {}
    for item in items or ():
        dotted, eq, text = item.partition("=")
        dotted = dotted.strip()
        parts = dotted.split(".")
        if not eq or not dotted or any(not p for p in parts):
            raise ConfigError(f"--set {item!r}: expected KEY.PATH=VALUE, e.g. traffic.load=1.5")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"--set {dotted}: {text!r} is not a YAML value") from None
        info = _field(model, parts, dotted, sections or {})
        if info is not None and not _models_in(info.annotation):
            try:
                field_type: Any = Annotated[info.annotation, info]  # the field's own checks
                TypeAdapter(field_type).validate_python(value)
            except ValidationError as err:
                msg = err.errors()[0]["msg"]
                raise ConfigError(
                    f"--set {dotted}={text.strip()}: {msg}; accepted: {_accepted(info)}"
                ) from None
        node = out
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, nested mappings key by key (``over`` wins)."""
    out = dict(base)
    for k, v in over.items():
        old = out.get(k)
        out[k] = merge(old, v) if isinstance(v, Mapping) and isinstance(old, Mapping) else v
    return out


def apply_sets(
    data: Mapping[str, Any],
    items: Sequence[str] | None,
    model: type[BaseModel],
    sections: Mapping[str, type[BaseModel]] | None = None,
) -> dict[str, Any]:
    """``data`` (a config file's mapping) with the ``--set`` overrides merged in."""
    return merge(data, parse_sets(items, model, sections))
