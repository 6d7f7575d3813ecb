"""CLI: rules check/explain, audit verify, keys new (exit codes and one-line errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditLog


def test_rules_check(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("params: {trust_threshold: 0.7}\n")
    assert main(["rules", "check", str(good)]) == 0
    assert "OK:" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "rules:\n  - {id: oops, severity: hard, violates: {field: hops, op: is, value: 1}}\n"
    )
    assert main(["rules", "check", str(bad)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "oops" in err and "'is'" in err


def test_rules_explain(tiny_graph_file: Path, capsys) -> None:
    assert main(["rules", "explain", "--case", str(tiny_graph_file), "--step", "3"]) == 0
    out = capsys.readouterr().out
    assert "request 3" in out and "reject" in out and "min_grant" in out


def test_audit_verify_and_keys(tmp_path: Path, capsys) -> None:
    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 0
    priv = tmp_path / "k" / "pcnalloc.key"
    assert priv.stat().st_mode & 0o777 == 0o600
    log = tmp_path / "a.log"
    with AuditLog(log, private_key=priv, checkpoint_every=2) as a:
        for i in range(5):
            a.append("event", {"i": i})
    pub = str(tmp_path / "k" / "pcnalloc.pub")
    assert main(["audit", "verify", str(log), "--public-key", pub]) == 0
    assert "OK" in capsys.readouterr().out
    ls = log.read_bytes().splitlines(keepends=True)
    del ls[2]
    log.write_bytes(b"".join(ls))
    with pytest.raises(SystemExit) as ex:
        main(["audit", "verify", str(log), "--public-key", pub])
    assert ex.value.code == 1
    assert "dropped" in capsys.readouterr().out
    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 2  # never overwrites
    assert keys.load_public_key(Path(pub))
