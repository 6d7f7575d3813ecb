"""Audit log writer and chain: edits, drops, inserts, swaps, torn tails, keys.

The full tamper list with a pinned key is in test_transparency.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditError, AuditLog, canonical, record_hash, verify
from pcnalloc.edge.guard import Decision


@pytest.fixture(scope="module")
def keypair():
    return keys.generate_keypair()


def write_log(path: Path, priv, n: int = 23, every: int = 5) -> Path:
    with AuditLog(path, private_key=priv, checkpoint_every=every, meta={"ruleset": "abc"}) as log:
        for i in range(n):
            d = Decision(
                action=i % 13,
                proposal=(i * 7) % 13,
                intercepted=i % 3 == 0,
                preempt=False,
                rule_ids=("capacity",) if i % 3 == 0 else (),
            )
            log.append_decision(
                request={"id": i, "cls": "scada"},
                decision=d,
                ruleset_sha256="r" * 64,
                model_sha256="m" * 64,
            )
    return path


def lines(p: Path) -> list[bytes]:
    return p.read_bytes().splitlines(keepends=True)


def put(p: Path, ls: list[bytes]) -> None:
    p.write_bytes(b"".join(ls))


def rewrite(rec: dict) -> bytes:
    rec = dict(rec)
    rec["hash"] = record_hash(rec)
    return canonical(rec) + b"\n"


def test_clean_log_verifies(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    r = verify(p, keypair[1])
    assert r.ok, r
    assert r.records == 1 + 23 + 6  # header, decisions, header head + 4 periodic + closing
    assert r.checkpoints == 6 and r.unsigned_tail == 0
    assert str(r).startswith("OK")
    with pytest.raises(AuditError, match="pinned public key"):
        verify(p)  # never a key found beside the log


def test_edited_record(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    ls = lines(p)
    ls[8] = ls[8].replace(b'"action":', b'"action":1', 1)
    put(p, ls)
    r = verify(p, keypair[1])
    assert not r.ok and r.problem == "edited" and r.line == 9


def test_edited_and_rehashed_record(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    ls = lines(p)
    rec = json.loads(ls[4])
    rec["body"]["action"] = 99
    ls[4] = rewrite(rec)
    put(p, ls)
    r = verify(p, keypair[1])
    assert r.problem == "edited" and r.seq == 4


def test_deleted_record(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    ls = lines(p)
    del ls[3]
    put(p, ls)
    r = verify(p, keypair[1])
    assert r.problem == "dropped" and "3..3" in r.message


def test_swapped_records(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    ls = lines(p)
    ls[3], ls[4] = ls[4], ls[3]
    put(p, ls)
    r = verify(p, keypair[1])
    assert r.problem == "reordered" and r.line == 4


def test_inserted_record(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    ls = lines(p)
    prev = json.loads(ls[2])
    fake = {"seq": 3, "type": "decision", "prev": prev["hash"], "ts": 0.0, "body": {"action": 0}}
    ls.insert(3, rewrite(fake))
    put(p, ls)
    r = verify(p, keypair[1])
    assert r.problem == "inserted" and r.line == 5


def test_truncated_tail_detected_and_repaired(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    data = p.read_bytes()
    p.write_bytes(data[:-20])  # torn last line
    r = verify(p, keypair[1])
    assert r.problem == "torn_tail"
    with pytest.raises(AuditError, match="torn record"):
        AuditLog(p, private_key=keypair[0])
    with AuditLog(p, private_key=keypair[0], repair=True) as log:
        assert log.seq >= 0
    r = verify(p, keypair[1])
    assert r.ok, r
    assert any(json.loads(x)["type"] == "recovery" for x in lines(p))


def test_clean_cut_of_signed_records(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    put(p, lines(p)[:-2])  # whole lines, including the closing tree head
    r = verify(p, keypair[1])
    assert r.problem == "unsigned_tail"
    # a cut back to a signed head is a valid shorter log: only a published head exposes it
    put(p, lines(p)[:-2])
    assert verify(p, keypair[1]).ok


def test_wrong_or_missing_key(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0])
    assert verify(p, keypair[1]).ok
    assert verify(p, keys.generate_keypair()[1]).problem == "foreign_key"
    assert not (tmp_path / "a.log.pub").exists()  # nothing beside the log to trust
    with pytest.raises(AuditError, match="pinned"):
        verify(p, None)


def test_resume_appends_to_the_chain(tmp_path: Path, keypair) -> None:
    p = write_log(tmp_path / "a.log", keypair[0], n=3)
    with AuditLog(p, private_key=keypair[0], checkpoint_every=2) as log:
        log.append("event", {"what": "resumed"})
    assert verify(p, keypair[1]).ok
    with AuditLog(p, private_key=keypair[0]), pytest.raises(AuditError, match="another writer"):
        AuditLog(p, private_key=keypair[0])


def test_keys_roundtrip(tmp_path: Path) -> None:
    priv_p, pub_p = keys.save_keypair(tmp_path / "k")
    assert priv_p.stat().st_mode & 0o777 == 0o600
    priv, pub = keys.load_private_key(priv_p), keys.load_public_key(pub_p)
    assert keys.verify_signature(pub, b"x", keys.sign(priv, b"x"))
    assert not keys.verify_signature(pub, b"y", keys.sign(priv, b"x"))
    with pytest.raises(keys.KeyFileError, match="exists"):
        keys.save_keypair(tmp_path / "k")
    with pytest.raises(keys.KeyFileError, match="not a PEM private key"):
        keys.load_private_key(pub_p)


@pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "x..y", "", "/abs"])
def test_key_name_cannot_escape_out(tmp_path: Path, name: str) -> None:
    with pytest.raises(keys.KeyFileError, match="not accepted"):
        keys.save_keypair(tmp_path / "k", name)
    assert not (tmp_path / "evil.key").exists()


def test_readable_private_key_warns(tmp_path: Path, caplog) -> None:
    priv_p, _ = keys.save_keypair(tmp_path / "k")
    with caplog.at_level("WARNING", logger="pcnalloc.edge.keys"):
        keys.load_private_key(priv_p)
    assert "readable" not in caplog.text
    priv_p.chmod(0o644)
    with caplog.at_level("WARNING", logger="pcnalloc.edge.keys"):
        keys.load_private_key(priv_p)
    assert "readable by group or others" in caplog.text


def test_ensure_keypair_never_replaces(tmp_path: Path) -> None:
    priv_p, pub_p = keys.ensure_keypair(tmp_path / "k")
    before = priv_p.read_bytes()
    assert keys.ensure_keypair(tmp_path / "k") == (priv_p, pub_p)
    assert priv_p.read_bytes() == before
    pub_p.unlink()
    with pytest.raises(keys.KeyFileError, match="half of key pair"):
        keys.ensure_keypair(tmp_path / "k")
