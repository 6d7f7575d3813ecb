"""append_request_decision (the request as fields) writes the bytes append_decision writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_audit_encoder import _Clock as Clock  # tests/edge is on the path (rootdir mode)
from test_audit_encoder import random_record

from pcnalloc.edge import audit as audit_mod
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog, verify

ORDER = ("id", "time_s", "cls", "src", "dst", "kind", "region", "emergency")


def _write(path: Path, recs: list[dict[str, Any]], fields: bool, priv: Any) -> bytes:
    with AuditLog(path, private_key=priv, checkpoint_every=7, sync_every=3) as log:
        for a in recs:
            if fields:
                r = a["request"]
                log.append_request_decision(
                    *(r[k] for k in ORDER), a["decision"], a["ruleset_sha256"], a["model_sha256"]
                )
            else:
                log.append_decision(
                    request=a["request"],
                    decision=a["decision"],
                    ruleset_sha256=a["ruleset_sha256"],
                    model_sha256=a["model_sha256"],
                )
    return path.read_bytes()


class _DuckDecision:
    """Not a guard Decision: both calls take the generic encoder."""

    def __init__(self, d: Any) -> None:
        self._d = d

    def to_record(self) -> dict[str, Any]:
        return self._d.to_record()


@pytest.mark.parametrize("generic", [False, True])
def test_fields_and_dict_give_the_same_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generic: bool
) -> None:
    """Random plain requests take the fixed layout; a decision of another type takes the
    generic encoder through both calls, so the files are equal either way."""
    priv, pub = keys.generate_keypair()
    rng = np.random.default_rng(11)
    recs = [random_record(rng) for _ in range(60)]
    for a in recs:
        a["preempted"] = None
        if generic:
            a["decision"] = _DuckDecision(a["decision"])
    calls: list[int] = []
    real = audit_mod._encode_decision

    def counted(*args: Any) -> bytes:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(audit_mod, "_encode_decision", counted)
    out = {}
    for fields in (False, True):
        monkeypatch.setattr(audit_mod.time, "time", Clock().time)
        out[fields] = _write(tmp_path / f"{fields}.jsonl", recs, fields, priv)
        assert verify(tmp_path / f"{fields}.jsonl", pub).ok
    assert out[True] == out[False]
    assert len(calls) == (0 if generic else 2 * len(recs))


def test_planted_key_order_fault_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A request text with two keys swapped is caught by the comparison above."""
    priv, _ = keys.generate_keypair()
    recs = [random_record(np.random.default_rng(5)) for _ in range(3)]
    for a in recs:
        a["preempted"] = None
    real = audit_mod.request_text

    def swapped(rid: int, time_s: float, cls: str, *rest: Any) -> str:
        text = real(rid, time_s, cls, *rest)
        return text.replace('"dst"', '"dsx"')

    monkeypatch.setattr(audit_mod.time, "time", Clock().time)
    good = _write(tmp_path / "a.jsonl", recs, True, priv)
    monkeypatch.setattr(audit_mod, "request_text", swapped)
    monkeypatch.setattr(audit_mod.time, "time", Clock().time)
    bad = _write(tmp_path / "b.jsonl", recs, True, priv)
    assert good != bad
