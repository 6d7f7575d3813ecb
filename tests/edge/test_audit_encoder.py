"""The fixed-layout decision encoder writes exactly the canonical bytes of the generic one."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pcnalloc.edge import audit as audit_mod
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog, canonical, encode_decision, verify
from pcnalloc.rules.guard import Decision

# Characters that need JSON escapes or \u sequences: quote, backslash, controls, DEL, Latin-1,
# the line separators, a BMP symbol and an astral one (a surrogate pair when escaped).
_ODD = ['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028", "≤", "😀", "/", " "]


def _text(rng: np.random.Generator) -> str:
    n = int(rng.integers(0, 12))
    pool = [chr(int(c)) for c in rng.integers(32, 127, size=n)]
    for _ in range(int(rng.integers(0, 3))):
        pool.insert(int(rng.integers(0, len(pool) + 1)), _ODD[int(rng.integers(len(_ODD)))])
    return "".join(pool)


def _float(rng: np.random.Generator) -> float:
    pick = int(rng.integers(6))
    if pick == 0:  # exponents where repr switches notation (1e-05, 1e+16 …)
        return float(rng.choice([0.0, -0.0, 1e-7, 1e-5, 1e16, 1.5e300, 5e-324, 123456789.0]))
    if pick == 1:
        return round(float(rng.uniform(1.7e9, 1.8e9)), 6)  # a Unix time as append rounds it
    if pick == 2:
        return float(rng.integers(0, 10**6))  # integral floats keep their ".0"
    return float(rng.standard_normal() * 10.0 ** int(rng.integers(-8, 20)))


def _int(rng: np.random.Generator) -> int:
    return int(rng.integers(-(2**62), 2**62)) * int(rng.choice([1, 1, 10**6]))


def random_record(rng: np.random.Generator) -> dict[str, Any]:
    """Arguments of :func:`encode_decision` with random plain values."""
    ids = tuple(_text(rng) for _ in range(int(rng.integers(0, 4))))
    d = Decision(
        action=_int(rng),
        proposal=_int(rng),
        intercepted=bool(rng.integers(2)),
        preempt=bool(rng.integers(2)),
        rule_ids=ids,
        reasons=tuple((i, _text(rng)) for i in ids),
        soft_ids=tuple(_text(rng) for _ in range(int(rng.integers(0, 3)))),
        priority=_int(rng),
        note=_text(rng),
    )
    request = {
        "id": _int(rng),
        "time_s": _float(rng),
        "cls": _text(rng),
        "src": _int(rng),
        "dst": _int(rng),
        "kind": _int(rng),
        "region": _int(rng),
        "emergency": bool(rng.integers(2)),
    }
    preempted = None if rng.integers(2) else [_int(rng) for _ in range(int(rng.integers(0, 4)))]
    return {
        "seq": int(rng.integers(0, 10**9)),
        "prev": _text(rng) if rng.integers(4) == 0 else f"{int(rng.integers(2**62)):064x}",
        "ts": _float(rng),
        "request": request,
        "decision": d,
        "ruleset_sha256": _text(rng),
        "model_sha256": _text(rng),
        "preempted": preempted,
    }


def reference_bytes(a: dict[str, Any]) -> bytes:
    """The record as ``AuditLog.append`` builds and canonicalises it (the generic path)."""
    body = {
        "request": a["request"],
        **a["decision"].to_record(),
        "ruleset": a["ruleset_sha256"],
        "model": a["model_sha256"],
    }
    if a["preempted"] is not None:
        body["preempted"] = list(a["preempted"])
    rec = {"seq": a["seq"], "type": "decision", "prev": a["prev"], "ts": a["ts"], "body": body}
    return canonical(rec)


def mismatches(encoder: Callable[..., bytes], n: int, seed: int = 0) -> list[int]:
    """Indices of the ``n`` random records whose encoding differs from the reference."""
    rng = np.random.default_rng(seed)
    bad = []
    for i in range(n):
        a = random_record(rng)
        if encoder(**a) != reference_bytes(a):
            bad.append(i)
    return bad


def test_fast_encoder_equals_canonical_on_random_records() -> None:
    assert mismatches(encode_decision, 5000) == []


def test_shared_decisions_encode_like_fresh_ones() -> None:
    """Decisions reused across records (the guard shares allowed ones; their text parts are
    kept per object) with other requests, pre-emptions and model / rule-set hashes, each of
    the latter sometimes an equal string that is another object."""
    rng = np.random.default_rng(6)
    pool = [random_record(rng) for _ in range(20)]
    hashes = ["a" * 64, "b" * 64, "é" * 3]
    bad = 0
    for _ in range(3000):
        a = random_record(rng)
        a["decision"] = pool[int(rng.integers(len(pool)))]["decision"]
        a["model_sha256"] = "".join(list(hashes[int(rng.integers(3))]))  # a fresh str object
        a["ruleset_sha256"] = hashes[int(rng.integers(3))]
        bad += encode_decision(**a) != reference_bytes(a)
    assert bad == 0


def test_stale_cached_parts_are_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Planted fault: parts kept per decision object whatever the hashes (a cache key that
    forgets the model and rule set) fail the shared-decision check."""
    real, kept = audit_mod._decision_parts, {}

    def stale(d: Any, model: str, ruleset: str) -> tuple[str, str, str]:
        if id(d) not in kept:
            kept[id(d)] = (d, real(d, model, ruleset))
        return kept[id(d)][1]

    monkeypatch.setattr(audit_mod, "_decision_parts", stale)
    with pytest.raises(AssertionError):
        test_shared_decisions_encode_like_fresh_ones()


def _raw_unicode(**a: Any) -> bytes:
    # Planted fault: non-ASCII written raw (what orjson/ujson do), otherwise identical.
    rec = json.loads(encode_decision(**a))
    return json.dumps(rec, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _float_str(**a: Any) -> bytes:
    # Planted fault: floats in another notation (1e-07 → 1e-7, as orjson writes them).
    return encode_decision(**a).replace(b"e-0", b"e-").replace(b"e+", b"e")


def _key_order(**a: Any) -> bytes:
    # Planted fault: two body keys swapped (not sorted any more).
    out = encode_decision(**a)
    return (
        out.replace(b'"rules":', b'"rulez":')
        .replace(b'"ruleset":', b'"rules":')
        .replace(b'"rulez":', b'"ruleset":')
    )


@pytest.mark.parametrize("planted", [_raw_unicode, _float_str, _key_order])
def test_planted_encoder_difference_is_caught(planted: Callable[..., bytes]) -> None:
    assert len(mismatches(planted, 300)) > 0


def test_fallbacks_give_reference_bytes_or_its_error() -> None:
    rng = np.random.default_rng(1)
    a = random_record(rng)
    a["request"] = {"id": 1, "cls": "scada"}  # another request layout: the generic encoder
    with pytest.raises((audit_mod._NotFixedLayout, KeyError)):
        encode_decision(**a)
    a["request"] = {**random_record(rng)["request"], "extra": 1}
    with pytest.raises(audit_mod._NotFixedLayout):
        encode_decision(**a)
    a = random_record(rng)
    a["decision"] = Decision(np.int64(3), 3, False, False)  # type: ignore[arg-type]
    with pytest.raises(audit_mod._NotFixedLayout):
        encode_decision(**a)
    with pytest.raises(TypeError):  # what the generic encoder raises for a numpy integer
        reference_bytes(a)


class _Clock:
    def __init__(self) -> None:
        self.t = 1_750_000_000.123456

    def time(self) -> float:
        self.t += 0.0123457
        return self.t


def test_fast_and_generic_logs_are_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same decisions written through append_decision (fast encoder) and through the
    generic append, on one clock, give the same file byte for byte, and it verifies."""
    priv, pub = keys.generate_keypair()
    rng = np.random.default_rng(3)
    recs = [random_record(rng) for _ in range(40)]
    out = {}
    fast_calls = []

    def counted(*args: Any) -> bytes:
        fast_calls.append(1)
        return encode_decision(*args)

    monkeypatch.setattr(audit_mod, "encode_decision", counted)
    for name in ("fast", "generic"):
        monkeypatch.setattr(audit_mod.time, "time", _Clock().time)
        p = tmp_path / f"{name}.jsonl"
        with AuditLog(p, private_key=priv, checkpoint_every=7, sync_every=3) as log:
            for a in recs:
                if name == "fast":
                    log.append_decision(
                        request=a["request"],
                        decision=a["decision"],
                        ruleset_sha256=a["ruleset_sha256"],
                        model_sha256=a["model_sha256"],
                        preempted=a["preempted"],
                    )
                else:
                    log.append("decision", json.loads(reference_bytes(a))["body"])
        out[name] = p.read_bytes()
        assert verify(p, pub).ok
    assert len(fast_calls) == len(recs)  # every decision took the fast path
    assert out["fast"] == out["generic"]


def test_deferred_leaves_give_the_same_heads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Leaves hashed at the next head or every few records: the file (heads included) is
    the one hashing every record at once (batch 1) writes, tree size counts every record,
    and the log verifies."""
    priv, pub = keys.generate_keypair()
    files = {}
    for batch in (1, 3, 1024):
        monkeypatch.setattr(audit_mod, "_LEAF_BATCH", batch)
        monkeypatch.setattr(audit_mod.time, "time", _Clock().time)
        rng = np.random.default_rng(4)
        p = tmp_path / f"log{batch}.jsonl"
        with AuditLog(p, private_key=priv, checkpoint_every=5, sync_every=2) as log:
            for _ in range(23):
                a = random_record(rng)
                log.append_decision(
                    request=a["request"],
                    decision=a["decision"],
                    ruleset_sha256=a["ruleset_sha256"],
                    model_sha256=a["model_sha256"],
                )
                assert log.tree_size == log.seq + 1
        assert verify(p, pub).ok
        files[batch] = p.read_bytes()
    assert files[3] == files[1] and files[1024] == files[1]


def test_head_without_pending_leaves_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planted fault: a head signed before the waiting leaves are hashed fails verify."""
    monkeypatch.setattr(AuditLog, "_add_leaves", lambda self: None)
    priv, pub = keys.generate_keypair()
    rng = np.random.default_rng(5)
    p = tmp_path / "log.jsonl"
    with AuditLog(p, private_key=priv, checkpoint_every=5) as log:
        for _ in range(12):
            a = random_record(rng)
            log.append_decision(
                request=a["request"],
                decision=a["decision"],
                ruleset_sha256=a["ruleset_sha256"],
                model_sha256=a["model_sha256"],
            )
    assert not verify(p, pub).ok


def test_audit_module_loads_without_numba() -> None:
    """The audit commands stay light: the writer recognises a guard Decision without
    importing the rule engine (and with it numba)."""
    code = "import sys, pcnalloc.edge.audit; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
