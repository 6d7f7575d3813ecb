"""The access and audit verbs refuse their outputs before the work starts (the work is
replaced by a recorder that must not be called) and write them whole or not at all."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from pcnalloc.cli import main

SMALL_ACCESS = (
    "devices: 8\nplc_subchannels: 8\ng5_subchannels: 3\nquota: 2\nepochs: 2\nslots_per_epoch: 2\n"
)


def _one_error_line(capsys) -> str:
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


# (verb, arguments, output flag, kind, module.attribute doing the work)
WORK: list[tuple[str, list[str], str, str, str]] = [
    ("access simulate --json", ["access", "simulate"], "--json", "file",
     "pcnalloc.access.simulate.run_access"),
    ("access simulate --png", ["access", "simulate"], "--png", "file",
     "pcnalloc.access.simulate.run_access"),
    ("access evaluate", ["access", "evaluate"], "--out", "dir", "pcnalloc.access.sweeps.sweep"),
    ("access train", ["access", "train"], "--out", "dir", "pcnalloc.twolayer.train.train_pipeline"),
    ("access compare", ["access", "compare", "--policies", "matching,raf"], "--json", "file",
     "pcnalloc.twolayer.compare.compare"),
    ("access couple", ["access", "couple"], "--json", "file",
     "pcnalloc.twolayer.coupling.run_coupled"),
    ("generalise", ["generalise"], "--out", "dir", "pcnalloc.distill.generalise.run_generalise"),
    ("audit head", ["audit", "head", "LOG", "--public-key", "PUB"], "--out", "file",
     "pcnalloc.edge.audit_proofs.latest_tree_head"),
    ("audit prove", ["audit", "prove", "LOG", "--index", "0"], "--out", "file",
     "pcnalloc.edge.audit_proofs.prove_inclusion"),
    ("audit consistency", ["audit", "consistency", "LOG", "--old-size", "1"], "--out", "file",
     "pcnalloc.edge.audit_proofs.prove_consistency"),
]  # fmt: skip

BAD = ["exists", "other kind", "parent is a file"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(("verb", "args", "flag", "kind", "work"), WORK, ids=[w[0] for w in WORK])
def test_output_refused_before_the_work(
    tmp_path: Path, capsys, monkeypatch, verb, args, flag, kind, work, bad
) -> None:
    mod, attr = work.rsplit(".", 1)
    called: list[Any] = []
    monkeypatch.setattr(importlib.import_module(mod), attr, lambda *a, **k: called.append(a))
    name = "out.json" if kind == "file" else "out"
    target = tmp_path / name
    if bad == "exists":
        target.mkdir() if kind == "dir" else target.write_text("{}")
        (target / "keep").write_text("x") if kind == "dir" else None
        want = "pass --overwrite"
    elif bad == "other kind":
        target.write_text("x") if kind == "dir" else target.mkdir()
        want = "give a folder path" if kind == "dir" else "give a file path"
    else:
        (tmp_path / "f").write_text("x")
        target = tmp_path / "f" / name
        want = "is a file, not a folder"
    argv = [str(tmp_path / "x.log") if a == "LOG" else str(tmp_path / "x.pub") if a == "PUB"
            else a for a in args]  # fmt: skip
    assert main([*argv, flag, str(target)]) == 2
    line = _one_error_line(capsys)
    assert want in line and flag in line, line
    assert called == [], f"{verb} started its work before refusing {flag}"


def test_access_simulate_outputs_overwrite_and_nothing_partial(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL_ACCESS)
    out, png = tmp_path / "r.json", tmp_path / "figs" / "cdf.png"
    args = ["access", "simulate", "--policies", "all-plc", "--config", str(cfg)]
    args += ["--json", str(out), "--png", str(png)]
    assert main(args) == 0 and png.read_bytes()[:4] == b"\x89PNG"
    first = out.read_bytes()
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in _one_error_line(capsys)
    assert main([*args, "--seed", "1", "--overwrite"]) == 0 and out.read_bytes() != first
    import pcnalloc.access.figures as figs

    def half_png(backlogs, path, label):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"\x89PNG half")
        raise RuntimeError("planted failure while drawing")

    monkeypatch.setattr(figs, "backlog_cdf_png", half_png)
    new = tmp_path / "new"
    args2 = ["access", "simulate", "--policies", "all-plc", "--config", str(cfg)]
    args2 += ["--json", str(new / "r.json"), "--png", str(new / "cdf.png")]
    assert main(args2) == 1
    assert not new.exists()  # no half PNG, no JSON, no folder
    assert sorted(p.name for p in png.parent.iterdir()) == ["cdf.png"]


def _fake_sweep(base, key, values, names, seeds, progress=None):  # type: ignore[no-untyped-def]
    cells = [
        {"policy": n, "value": v, **{m: [1.0 + i for i in range(len(seeds))] for m in
         ("weighted_sum", "traffic_cost", "mean_delay_s")}}
        for v in values for n in names
    ]  # fmt: skip
    return {"label": key, "values": list(values), "cells": cells}


def test_access_evaluate_is_staged(tmp_path: Path, capsys, monkeypatch) -> None:
    import pcnalloc.access.sweeps as sweeps

    monkeypatch.setattr(sweeps, "sweep", _fake_sweep)  # the figures and JSON are what is tested
    cfg = tmp_path / "small.yaml"
    cfg.write_text(SMALL_ACCESS)
    out = tmp_path / "ev"
    args = ["access", "evaluate", "--config", str(cfg), "--out", str(out), "--seeds", "2"]
    args += ["--policies", "matching,all-plc", "--devices", "4"]
    assert main(args) == 0
    got = json.loads((out / "access_evaluate.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["access_evaluate.json", *got["figures"]]
    )
    capsys.readouterr()
    assert main(args) == 2 and "--overwrite" in _one_error_line(capsys)
    import pcnalloc.access.figures as figs

    def fail(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted failure after five figures")

    monkeypatch.setattr(figs, "backlog_cdf_png", fail)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir())
    assert main([*args, "--overwrite"]) == 1
    assert sorted((p.name, p.stat().st_mtime_ns) for p in out.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev", "small.yaml"]  # no temp left
    assert main([*args[:4], *args[6:], "--out", str(tmp_path / "a" / "b")]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ev", "small.yaml"]  # no parents


def test_audit_out_is_refused_unless_overwrite(tmp_path: Path, capsys) -> None:
    from pcnalloc.edge.audit import AuditLog
    from pcnalloc.edge.keys import load_private_key

    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 0
    log = tmp_path / "a.jsonl"
    key = load_private_key(tmp_path / "k" / "pcnalloc.key")
    with AuditLog(log, private_key=key, checkpoint_every=4) as a:
        for i in range(8):
            a.append("decision", {"request": {"id": i}, "action": 1, "flow_id": f"r0-{i}"})
    head = tmp_path / "head.json"
    pub = ["--public-key", str(tmp_path / "k" / "pcnalloc.pub")]
    assert main(["audit", "head", str(log), *pub, "--out", str(head)]) == 0
    first = head.read_bytes()
    head.write_text("an earlier head I published\n")
    capsys.readouterr()
    assert main(["audit", "head", str(log), *pub, "--out", str(head)]) == 2
    assert "--overwrite" in _one_error_line(capsys)
    assert head.read_text() == "an earlier head I published\n"
    assert main(["audit", "head", str(log), *pub, "--out", str(head), "--overwrite"]) == 0
    assert head.read_bytes() == first
    proof = tmp_path / "p.json"
    for verb in (["prove", "--index", "1"], ["consistency", "--old-size", "4"]):
        proof.write_text("{}")
        assert main(["audit", verb[0], str(log), *verb[1:], "--out", str(proof)]) == 2
        assert "--overwrite" in _one_error_line(capsys) and proof.read_text() == "{}"
        assert (
            main(["audit", verb[0], str(log), *verb[1:], "--out", str(proof), "--overwrite"]) == 0
        )
        assert json.loads(proof.read_text())["type"] == verb[0].replace("prove", "inclusion")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "head.json", "k", "p.json"]
