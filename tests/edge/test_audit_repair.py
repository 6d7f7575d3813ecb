"""``pcnalloc audit repair``: keep the verified prefix of a torn log, refuse anything else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog, verify


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path / "keys", "audit")


def crashed_log(path: Path, key: Path, n: int = 25, torn: bytes = b'{"body":{"half') -> bytes:
    """A log whose writer died mid-write: unsigned tail, torn last line; its bytes."""
    w = AuditLog(path, private_key=key, checkpoint_every=10)
    for i in range(n):
        w.append("decision", {"i": i})
    w.close(checkpoint=False)
    with open(path, "ab") as fh:
        fh.write(torn)
    return path.read_bytes()


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    try:
        rc = main(["audit", "repair", *argv])
    except SystemExit as ex:  # the console script turns it into the exit status
        rc = int(ex.code or 0)
    out = capsys.readouterr()
    return rc, (out.out + out.err).replace("\n", " ")


def test_repair_keeps_the_verified_prefix(
    tmp_path: Path, pair: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "a.jsonl"
    original = crashed_log(log, pair[0])
    assert verify(log, pair[1], allow_unsigned_tail=True).problem == "torn_tail"
    rc, out = run(capsys, str(log), "--public-key", str(pair[1]))
    assert rc == 0 and "dropped 14 torn bytes" in out and "kept 29 records" in out, out
    assert (tmp_path / "a.jsonl.bak").read_bytes() == original
    assert log.read_bytes() == original[: original.rfind(b"\n") + 1]
    res = verify(log, pair[1], allow_unsigned_tail=True)
    assert res.ok and res.unsigned_tail > 0  # the acknowledged unsigned tail is kept
    rc, out = run(capsys, str(log), "--public-key", str(pair[1]))
    assert rc == 0 and "intact" in out
    assert not list(tmp_path.glob("*.tmp"))


def test_repair_with_key_signs_a_recovery_record(
    tmp_path: Path, pair: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "a.jsonl"
    crashed_log(log, pair[0])
    rc, out = run(capsys, str(log), "--public-key", str(pair[1]), "--key", str(pair[0]))
    assert rc == 0 and "recovery record" in out, out
    assert verify(log, pair[1]).ok  # tail signed, no unsigned records left
    rec = [json.loads(x) for x in log.read_text().splitlines()]
    recovery = next(r for r in rec if r["type"] == "recovery")["body"]
    assert recovery["dropped_bytes"] == 14 and recovery["backup"] == "a.jsonl.bak"
    # the existing backup is not replaced without --overwrite
    with open(log, "ab") as fh:
        fh.write(b"{torn")
    rc, out = run(capsys, str(log), "--public-key", str(pair[1]))
    assert rc == 2 and "--overwrite" in out
    rc, _ = run(capsys, str(log), "--public-key", str(pair[1]), "--overwrite")
    assert rc == 0


def test_repair_refuses_tampering_and_bad_input(
    tmp_path: Path, pair: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    log = tmp_path / "a.jsonl"
    crashed_log(log, pair[0])
    lines = log.read_bytes().split(b"\n")
    lines[5] = lines[5].replace(b'"i":3', b'"i":4')  # planted: an edit, not a crash
    log.write_bytes(b"\n".join(lines))
    before = log.read_bytes()
    rc, out = run(capsys, str(log), "--public-key", str(pair[1]))
    assert rc == 1 and "not a torn log" in out and "edited" in out, out
    assert log.read_bytes() == before and not (tmp_path / "a.jsonl.bak").exists()
    other = keys.save_keypair(tmp_path / "k2", "other")[1]
    log2 = tmp_path / "b.jsonl"
    crashed_log(log2, pair[0])
    for argv in (
        [str(log2), "--public-key", str(other)],  # a log from another key
        [str(log2)],  # no pinned key
        [str(tmp_path / "missing.jsonl"), "--public-key", str(pair[1])],
    ):
        rc, out = run(capsys, *argv)
        assert rc == 2 and out.count("error") == 1, (argv, out)
    w = AuditLog(tmp_path / "c.jsonl", private_key=pair[0])  # still open in its writer
    try:
        with open(tmp_path / "c.jsonl", "ab") as fh:
            fh.write(b"{torn")
        rc, out = run(capsys, str(tmp_path / "c.jsonl"), "--public-key", str(pair[1]))
        assert rc == 2 and "another writer" in out
    finally:
        w.close(checkpoint=False)
