"""Every probe of the bad-input review, as a table: input, expected exit code, line fragment.

docs/errors.md lists the same probes with what they did before and what they do now.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_checkpoint_mismatch import TEACHER_YAML

from pcnalloc.cli import main


class Kit:
    """Inputs shared by the probes: a tiny graph, a library, keys and a teacher checkpoint."""

    def __init__(self, root: Path, graph: Path) -> None:
        self.root, self.graph = root, graph
        self._n = 0

    def path(self, name: str) -> Path:
        self._n += 1
        d = self.root / f"p{self._n}"
        d.mkdir()
        return d / name

    def write(self, name: str, data: bytes | str) -> Path:
        p = self.path(name)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def graph_with(self, **link0: Any) -> Path:
        doc = json.loads(self.graph.read_text())
        doc["links"][0].update(link0)
        return self.write("g.json", json.dumps(doc))

    def library_copy(self, damage: Callable[[Path], None]) -> Path:
        d = self.path("lib")
        shutil.copytree(self.root / "lib", d)
        damage(d / "part-00000.parquet")
        return d


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


def _zero_middle(p: Path) -> None:
    b = bytearray(p.read_bytes())
    m = len(b) // 2
    b[m : m + 64] = bytes(64)
    p.write_bytes(bytes(b))


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory, tiny_graph_file: Path) -> Kit:
    k = Kit(tmp_path_factory.mktemp("probes"), tiny_graph_file)
    g = str(tiny_graph_file)
    lib = ["library", "build", "--teacher", "ksp-ff", "--out", str(k.root / "lib")]
    lib += ["--cases", g, "--episodes", "1", "--requests", "30", "--executor", "serial"]
    assert main(lib) == 0
    assert main(["keys", "new", "--out", str(k.root / "keys")]) == 0
    cfg = k.write("teacher.yaml", TEACHER_YAML.format(case=g))
    assert main(["teacher", "train", "--config", str(cfg), "--out", str(k.root / "t")]) == 0
    return k


def _nested_not(n: int) -> str:
    leaf = "{field: hops, op: gt, value: 1}"
    return (
        f"rules:\n  - id: deep\n    severity: hard\n    violates: {'{not: ' * n}{leaf}{'}' * n}\n"
    )


Probe = tuple[str, Callable[[Kit], list[str]], int, str]
PROBES: list[Probe] = [
    (
        "non-UTF-8 config YAML",
        lambda k: ["simulate", "--config", str(k.write("c.yaml", b"traffic: {load: \xff}\n"))],
        2,
        "not valid UTF-8",
    ),
    (
        "non-UTF-8 rule file",
        lambda k: ["rules", "check", str(k.write("r.yaml", b"rules:\n  - \xff\xfe bad\n"))],
        2,
        "not UTF-8",
    ),
    ("negative --seed", lambda k: ["simulate", "--seed", "-1"], 2, "'--seed'"),
    ("huge --requests", lambda k: ["simulate", "--requests", "10000000000"], 2, "'--requests'"),
    (
        "keys new --out is a file",
        lambda k: ["keys", "new", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "teacher train --out is a file",
        lambda k: ["teacher", "train", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "teacher evaluate --out is a folder (refused before the sweep)",
        lambda k: ["teacher", "evaluate", "--teacher", str(k.root / "t"), "--out", str(k.root)],
        2,
        "is a folder; give a file",
    ),
    (
        "library build --out is a file",
        lambda k: ["library", "build", "--teacher", "ksp-ff", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "run --out is a file",
        lambda k: ["run", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "simulate --json is a folder",
        lambda k: ["simulate", "--json", str(k.root)],
        2,
        "is a folder; give a file",
    ),
    (
        "compile: a student of another shape",
        lambda k: [
            "compile",
            "--student",
            str(_wrong_student(k)),
            "--library",
            str(k.root / "lib"),
            "--key",
            str(k.root / "keys" / "pcnalloc.key"),
            "--out",
            str(k.path("art")),
        ],
        2,
        "does not take this library's",
    ),
    (
        "library info: truncated Parquet",
        lambda k: ["library", "info", str(k.library_copy(_truncate))],
        2,
        "is corrupted",
    ),
    (
        "distill: truncated Parquet",
        lambda k: [
            "distill",
            "--library",
            str(k.library_copy(_truncate)),
            "--out",
            str(k.path("s")),
        ],
        2,
        "is corrupted",
    ),
    (
        "compile: truncated Parquet",
        lambda k: [
            "compile",
            "--student",
            str(_wrong_student(k)),
            "--library",
            str(k.library_copy(_truncate)),
            "--key",
            str(k.root / "keys" / "pcnalloc.key"),
            "--out",
            str(k.path("art")),
        ],
        2,
        "is corrupted",
    ),
    (
        "library info: corrupted in the middle",
        lambda k: ["library", "info", str(k.library_copy(_zero_middle))],
        2,
        "is corrupted",
    ),
    (
        "2,000 nested not: in a rule",
        lambda k: ["rules", "check", str(k.write("r.yaml", _nested_not(2000)))],
        2,
        "nested too deeply",
    ),
    (
        "graph JSON: NaN length",
        lambda k: ["network", "show", str(k.graph_with(length_km=math.nan))],
        2,
        "length_km nan is invalid",
    ),
    (
        "graph JSON: inf length",
        lambda k: ["network", "show", str(k.graph_with(length_km=math.inf))],
        2,
        "length_km inf is invalid",
    ),
    (
        "graph JSON: negative capacity",
        lambda k: ["network", "show", str(k.graph_with(capacity_mbps=-5.0))],
        2,
        "capacity_mbps -5.0 is invalid",
    ),
    (
        "graph JSON: 1e30 capacity",
        lambda k: ["network", "show", str(k.graph_with(capacity_mbps=1e30))],
        2,
        "capacity_mbps 1e+30 is invalid",
    ),
    (
        "graph JSON: NaN capacity",
        lambda k: ["network", "show", str(k.graph_with(capacity_mbps=math.nan))],
        2,
        "capacity_mbps nan is invalid",
    ),
    (
        "graph JSON: negative circuits",
        lambda k: ["network", "show", str(k.graph_with(circuits=-2))],
        2,
        "circuits -2.0 is invalid",
    ),
    (
        "simulate --json with a negative-circuit graph (no NaN JSON)",
        lambda k: [
            "simulate",
            "--case",
            str(k.graph_with(circuits=-2)),
            "--json",
            str(k.path("r.json")),
        ],
        2,
        "circuits -2.0 is invalid",
    ),
    (
        "a .json case that is neither graph nor pandapower JSON",
        lambda k: ["network", "show", str(k.write("n.json", "null"))],
        2,
        "neither a pcnalloc graph JSON",
    ),
    (
        "rule file: NaN threshold",
        lambda k: ["rules", "check", str(k.write("r.yaml", "params: {util_knee: .nan}\n"))],
        2,
        "finite number",
    ),
    (
        "rule file: unknown version",
        lambda k: ["rules", "check", str(k.write("r.yaml", "version: 2\n"))],
        2,
        "unknown rule file version 2",
    ),
    (
        "distill --teacher of another teacher",
        lambda k: [
            "distill",
            "--library",
            str(k.root / "lib"),
            "--out",
            str(k.path("s")),
            "--teacher",
            str(k.root / "t"),
        ],
        2,
        "is not the teacher of library",
    ),
    (
        "library build over an existing library",
        lambda k: ["library", "build", "--teacher", "ksp-ff", "--out", str(k.root / "lib")],
        2,
        "pass --overwrite",
    ),
    (
        "rules explain --step 10000000",
        lambda k: ["rules", "explain", "--step", "10000000"],
        2,
        "'--step'",
    ),
    (
        "audit verify of an empty file",
        lambda k: [
            "audit",
            "verify",
            str(k.write("a.jsonl", b"")),
            "--public-key",
            str(k.root / "keys" / "pcnalloc.pub"),
        ],
        1,
        "no complete record",
    ),
    (
        "run: bad evaluate.loads, refused before stage one",
        lambda k: [
            "run",
            "--config",
            str(k.write("run.yaml", "evaluate: {loads: [0.5, -1]}\n")),
            "--out",
            str(k.path("run")),
        ],
        2,
        "evaluate.loads",
    ),
    (
        "simulate --audit with a missing key leaves no audit file",
        lambda k: [
            "simulate",
            "--audit",
            str(k.path("logs") / "a.jsonl"),
            "--key",
            str(k.root / "nope.key"),
        ],
        2,
        "nope.key",
    ),
]


def _earlier_run(k: Kit, run: str) -> Path:
    """A TensorBoard log folder already holding ``run`` (an earlier run's events)."""
    tb = k.path("tb")
    (tb / run).mkdir(parents=True)
    (tb / run / "events.out.tfevents.1").write_bytes(b"earlier")
    return tb


SMALL_ACCESS = "devices: 8\nplc_subchannels: 8\ng5_subchannels: 3\nquota: 2\nepochs: 2\n"
PROBES += [
    # outputs of the verbs added since the review: checked before any work
    (
        "access simulate --json is an existing file",
        lambda k: ["access", "simulate", "--json", str(k.write("r.json", "{}"))],
        2,
        "pass --overwrite",
    ),
    (
        "access evaluate --out is a file",
        lambda k: ["access", "evaluate", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "access train --out is a file",
        lambda k: ["access", "train", "--out", str(k.write("f", "x"))],
        2,
        "is a file; give a folder",
    ),
    (
        "access compare --json is a folder",
        lambda k: ["access", "compare", "--policies", "matching,raf", "--json", str(k.root)],
        2,
        "is a folder; give a file",
    ),
    (
        "access couple --json under a file",
        lambda k: ["access", "couple", "--json", str(k.write("f", "x") / "r.json")],
        2,
        "is a file, not a folder",
    ),
    (
        "generalise --out is an existing folder",
        lambda k: ["generalise", "--out", str(k.root / "lib")],
        2,
        "pass --overwrite",
    ),
    (
        "audit head --out is an existing file",
        lambda k: [
            "audit",
            "head",
            "none.log",
            "--public-key",
            str(k.root / "keys" / "pcnalloc.pub"),
            "--out",
            str(k.write("head.json", "published\n")),
        ],
        2,
        "pass --overwrite",
    ),
    (
        "audit prove --out is a folder",
        lambda k: ["audit", "prove", "none.log", "--index", "0", "--out", str(k.root)],
        2,
        "is a folder; give a file",
    ),
    (
        "audit consistency --out is an existing file",
        lambda k: [
            "audit",
            "consistency",
            "none.log",
            "--old-size",
            "1",
            "--out",
            str(k.write("c.json", "{}")),
        ],
        2,
        "pass --overwrite",
    ),
    (
        "audit repair --backup is a folder",
        lambda k: [
            "audit",
            "repair",
            "none.log",
            "--public-key",
            str(k.root / "keys" / "pcnalloc.pub"),
            "--backup",
            str(k.root),
        ],
        2,
        "is a folder; give a file",
    ),
    (
        "serve --audit is a folder (before the artifact is read)",
        lambda k: [
            "serve",
            "--artifact",
            "none",
            "--public-key",
            "none.pub",
            "--region",
            "0",
            "--port",
            "8999",
            "--audit",
            str(k.root),
        ],
        2,
        "is a folder; give a file",
    ),
    (
        "teacher train --tensorboard: the run folder holds an earlier run",
        lambda k: [
            "teacher",
            "train",
            "--out",
            str(k.path("t")),
            "--tensorboard",
            str(_earlier_run(k, "teacher")),
        ],
        2,
        "pass --overwrite",
    ),
    (
        "distill --tensorboard: the run folder holds an earlier run",
        lambda k: [
            "distill",
            "--library",
            str(k.root / "lib"),
            "--out",
            str(k.path("s")),
            "--tensorboard",
            str(_earlier_run(k, "student/s")),
        ],
        2,
        "pass --overwrite",
    ),
    # numbers out of range, on every verb (tests/commands/test_cli_number_ranges.py sweeps all)
    ("access simulate --seed -1", lambda k: ["access", "simulate", "--seed", "-1"], 2, "'--seed'"),
    (
        "teacher train --seed 10^23 (a C long overflow)",
        lambda k: ["teacher", "train", "--out", str(k.path("t")), "--seed", str(10**23)],
        2,
        "'--seed'",
    ),
    (
        "library build --requests 10^11",
        lambda k: [
            "library",
            "build",
            "--teacher",
            "ksp-ff",
            "--out",
            str(k.path("l")),
            "--requests",
            str(10**11),
        ],
        2,
        "'--requests'",
    ),
    (
        "access compare --seeds 10^12 (MemoryError)",
        lambda k: ["access", "compare", "--seeds", str(10**12)],
        2,
        "'--seeds'",
    ),
    (
        "evaluate --seeds 0-100000000000 (MemoryError)",
        lambda k: ["evaluate", "--seeds", "0-100000000000", "--out", str(k.path("ev"))],
        2,
        "bad seed range",
    ),
    (
        "teacher config seed: 1e23",
        lambda k: [
            "teacher",
            "train",
            "--out",
            str(k.path("t")),
            "--config",
            str(k.write("t.yaml", "seed: 100000000000000000000000\n")),
        ],
        2,
        "seed",
    ),
    (
        "access config epochs: 10^10 (ran for days)",
        lambda k: [
            "access",
            "simulate",
            "--config",
            str(k.write("a.yaml", SMALL_ACCESS + "epochs: 10000000000\n")),
        ],
        2,
        "epochs",
    ),
    # formats: the rest of the validation at the edge
    (
        "graph JSON: duplicate site ids",
        lambda k: ["network", "show", str(_graph_doc(k, dup_site=True))],
        2,
        "duplicate site ids",
    ),
    (
        "graph JSON: a link to no site",
        lambda k: ["network", "show", str(k.graph_with(b="ZZZ"))],
        2,
        "names no site",
    ),
    (
        "library part replaced by another valid Parquet",
        lambda k: ["library", "info", str(k.library_copy(_fewer_rows))],
        2,
        "differs from the manifest",
    ),
    (
        "distill: Parquet corrupted in the middle",
        lambda k: [
            "distill",
            "--library",
            str(k.library_copy(_zero_middle)),
            "--out",
            str(k.path("s")),
        ],
        2,
        "is corrupted",
    ),
    (
        "compile: Parquet corrupted in the middle",
        lambda k: [
            "compile",
            "--student",
            str(_wrong_student(k)),
            "--library",
            str(k.library_copy(_zero_middle)),
            "--key",
            str(k.root / "keys" / "pcnalloc.key"),
            "--out",
            str(k.path("art")),
        ],
        2,
        "is corrupted",
    ),
    (
        "failed library build into new folders leaves none",
        lambda k: [
            "library",
            "build",
            "--teacher",
            "ksp-ff",
            "--cases",
            "case_nope",
            "--out",
            str(k.path("new") / "a" / "b"),
        ],
        2,
        "case_nope",
    ),
]


def _fewer_rows(p: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(pq.read_table(p).slice(0, 5), p)


def _graph_doc(k: Kit, *, dup_site: bool) -> Path:
    doc = json.loads(k.graph.read_text())
    if dup_site:
        doc["sites"].append(dict(doc["sites"][0]))
    return k.write("g.json", json.dumps(doc))


def _wrong_student(k: Kit) -> Path:
    import torch

    from pcnalloc.export.compile import save_student_checkpoint

    return save_student_checkpoint(torch.nn.Sequential(torch.nn.Linear(7, 5)), k.path("s.pt"))


@pytest.mark.parametrize(("probe", "argv", "code", "fragment"), PROBES, ids=[p[0] for p in PROBES])
def test_probe(kit: Kit, capsys, probe: str, argv, code: int, fragment: str) -> None:
    args = argv(kit)
    flags = ("--out", "--json", "--audit", "--png", "--backup", "--tensorboard")
    outs = [Path(args[i + 1]) for i, a in enumerate(args) if a in flags]
    absent = [q for p in outs for q in (p, p.parent) if not q.exists()]
    capsys.readouterr()
    try:
        rc = main(args)
    except SystemExit as ex:  # audit verify reports FAIL through typer.Exit inside its verb
        rc = int(ex.code or 0)
    cap = capsys.readouterr()
    err = [x for x in cap.err.splitlines() if x.strip()]
    assert rc == code, (probe, rc, cap.err[-1500:], cap.out[-500:])
    assert "Traceback" not in cap.err
    if code == 2:
        assert len(err) == 1 and err[0].startswith("error: "), err
        assert fragment in err[0], err
    else:
        assert fragment in cap.out + cap.err and "OK" not in cap.out
    assert not [q for q in absent if q.exists()], "a refused command created an output"


def test_simulate_config_is_not_replaced_by_flag_defaults(kit: Kit) -> None:
    cfg = kit.write("env.yaml", f"network: {{case: '{kit.graph}'}}\ntraffic: {{load: 1.3}}\n")
    out = kit.path("r.json")
    assert main(["simulate", "--config", str(cfg), "--requests", "20", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["case"] == str(kit.graph) and r["load"] == 1.3
