"""Fuzz harness: generated configs (simulate, teacher, run, access, distill), graph JSONs and
rule files through the real CLI entry point, in-process (``pcnalloc.cli.main`` with an argv).

Each input is a valid document, or one mutated at a random place (a nasty value, a deleted or
unknown key, a document of another type) and sometimes corrupted as bytes (truncated, a byte
that is not UTF-8). The oracle: an invalid input exits 2 with a single ``error:`` line on
stderr and no traceback; a valid input exits 0; nothing exits 1 (an internal error). Inputs
that are invalid by construction must exit 2; mutations that may or may not be valid may
exit 0 or 2. Long training and pipeline work is stubbed after validation (the verbs' own
checks and the output handling run for real); ``simulate`` runs for real, 5 decisions, and
``access simulate`` for real on 8 devices and at most 2 × 2 slots.

The default run keeps to a few hundred examples; ``-m slow`` runs ten times as many.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from pcnalloc.cli import main

CORPUS: Counter[str] = Counter()
"""Examples run per input family (printed at the end of the module; see the docs)."""
OUTCOMES: Counter[str] = Counter()
"""Exit codes seen over the corpus ("exit 0", "exit 2")."""

NASTY: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    -1,
    0,
    -0.5,
    1e30,
    -1e30,
    2**63,
    "",
    "x" * 300,
    "case_nope",
    None,
    True,
    [],
    {},
    [1, [2, [3]]],
    {"a": {"b": {"c": None}}},
]
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": True,
    "phases": [Phase.explicit, Phase.generate],  # a failure is reported as found (no shrink)
}
SLOW_FACTOR = 10


@pytest.fixture(scope="module", autouse=True)
def _report_corpus():
    yield
    total = sum(CORPUS.values())
    line = (
        f"fuzz corpus: {total} inputs ({dict(sorted(CORPUS.items()))}; "
        f"{dict(sorted(OUTCOMES.items()))}; 0 tracebacks)"
    )
    print("\n" + line)
    out = os.environ.get("PCNALLOC_FUZZ_REPORT")
    if out:
        Path(out).write_text(json.dumps({"total": total, **CORPUS, **OUTCOMES}) + "\n")


# ----------------------------------------------------------------------------- oracle
def check(argv: list[str], capsys, *, expect: str, raw: bytes = b"") -> int:
    """Run the CLI; ``expect`` is "ok", "error" or "either"; ``raw`` is the input file."""
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    shown = raw[:1500]
    OUTCOMES[f"exit {rc}"] += 1
    assert "Traceback" not in err, (err[-3000:], shown)
    assert rc in (0, 2), f"exit {rc} for {argv}: {err[-2000:]}; input {shown!r}"
    if rc == 2:
        assert len(lines) == 1 and lines[0].startswith("error: "), (lines, shown)
    if expect == "ok":
        assert rc == 0, f"valid input refused: {lines}; input {shown!r}"
    elif expect == "error":
        assert rc == 2, f"invalid input accepted: {argv}; input {shown!r}"
    return rc


# -------------------------------------------------------------------------- mutation
def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any, *, delete: bool = False) -> Any:
    if not path:
        return value
    node = doc
    for k in path[:-1]:
        node = node[k]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


def mutate(data: st.DataObject, doc: dict[str, Any]) -> tuple[Any, bool]:
    """A copy of ``doc`` changed at one random place; True when surely invalid (an unknown
    key where every section forbids them, or a document that is not a mapping)."""
    doc = json.loads(json.dumps(doc))
    op = data.draw(st.sampled_from(["value", "value", "delete", "unknown", "document"]))
    if op == "document":
        return data.draw(st.sampled_from([[1, 2], 7, "text", None])), False
    if op == "unknown":
        dicts = [p for p in _paths(doc) if isinstance(_get(doc, p), dict)]
        p = data.draw(st.sampled_from(dicts))
        _get(doc, p)["no_such_field"] = 1
        return doc, True
    paths = [p for p in _paths(doc) if p]
    p = data.draw(st.sampled_from(paths))
    if op == "delete":
        return _set(doc, p, None, delete=True), False
    return _set(doc, p, data.draw(st.sampled_from(NASTY))), False


def _get(doc: Any, path: tuple) -> Any:
    for k in path:
        doc = doc[k]
    return doc


def corrupt(data: st.DataObject, raw: bytes) -> tuple[bytes, str]:
    """Maybe corrupt the bytes: "utf8" (surely invalid), "truncated" (a cut may remove
    what made the input invalid) or "none"."""
    how = data.draw(st.sampled_from(["none", "none", "none", "truncated", "utf8"]))
    if how == "truncated" and raw:
        return raw[: data.draw(st.integers(0, len(raw) - 1))], how
    if how == "utf8":
        at = data.draw(st.integers(0, len(raw)))
        return raw[:at] + b"\xff\xfe" + raw[at:], how
    return raw, "none"


def _yaml(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).encode()


def _case(data: st.DataObject, valid: dict[str, Any], *, unknown_invalid: bool = True):
    """(bytes, expect) for one example from a valid document."""
    if data.draw(st.booleans()):
        return _yaml(valid), "ok"
    doc, surely = mutate(data, valid)
    raw, how = corrupt(data, _yaml(doc))
    if how == "utf8":
        return raw, "error"
    return raw, "error" if surely and unknown_invalid and how == "none" else "either"


# ----------------------------------------------------------------------- input families
CALM = {"faults_per_hour": 0.0, "fiber_cuts_per_hour": 0.0}


def env_doc(data: st.DataObject, case: Path) -> dict[str, Any]:
    return {
        "network": {"case": str(case)},
        "k_paths": data.draw(st.integers(1, 8)),
        "traffic": {
            "load": data.draw(st.floats(0.05, 3.0)),
            "warm_start": data.draw(st.booleans()),
            "events": dict(CALM),
        },
    }


def simulate_case(data: st.DataObject, capsys, case: Path) -> None:
    raw, expect = _case(data, env_doc(data, case))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "env.yaml"
        p.write_bytes(raw)
        check(["simulate", "--config", str(p), "--requests", "5"], capsys, expect=expect, raw=raw)
    CORPUS["simulate config"] += 1


def teacher_doc(data: st.DataObject, case: Path) -> dict[str, Any]:
    return {
        "env": {"network": {"case": str(case)}, "traffic": {"events": dict(CALM)}},
        "steps": data.draw(st.integers(1, 5000)),
        "batch_size": data.draw(st.sampled_from([8, 16, 32])),
        "lr": data.draw(st.floats(1e-5, 1e-2)),
        "gamma": data.draw(st.floats(0.5, 0.999)),
        "loads": [data.draw(st.floats(0.1, 2.0))],
        "hidden": 16,
    }


def teacher_case(data: st.DataObject, capsys, case: Path) -> None:
    raw, expect = _case(data, teacher_doc(data, case))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "teacher.yaml"
        p.write_bytes(raw)
        rc = check(
            ["teacher", "train", "--config", str(p), "--out", str(Path(d) / "t")],
            capsys,
            expect=expect,
            raw=raw,
        )
        if rc == 0:
            assert (Path(d) / "t" / "step_00000001.pt").is_file()
        assert sorted(x.name for x in Path(d).iterdir()) in (
            ["t", "teacher.yaml"],
            ["teacher.yaml"],
        )
    CORPUS["teacher config"] += 1


def run_doc(data: st.DataObject, case: Path) -> dict[str, Any]:
    c = str(case)
    return {
        "seed": data.draw(st.integers(0, 100)),
        "executor": "serial",
        "env": {"network": {"case": c}, "traffic": {"events": dict(CALM)}},
        "teacher": {"steps": data.draw(st.integers(10, 500))},
        "library": {"cases": [c], "loads": [data.draw(st.floats(0.1, 2.0))], "episodes": 1},
        "distill": {"config": {"epochs": data.draw(st.integers(1, 5))}, "eval_seeds": [300]},
        "evaluate": {
            "policies": ["teacher", "edge+rules", "ksp-ff"],
            "cases": [c],
            "loads": [data.draw(st.floats(0.1, 2.0))],
            "seeds": [100],
            "bound_cases": [c],
            "scenarios": ["normal"],
            "scenario_cases": [c],
            "tuned_heuristics": ["ksp-ff"],
            "tune_seeds": [1_000_000],
        },
    }


def run_case(data: st.DataObject, capsys, case: Path) -> None:
    raw, expect = _case(data, run_doc(data, case))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "run.yaml"
        p.write_bytes(raw)
        check(
            ["run", "--config", str(p), "--out", str(Path(d) / "o")], capsys, expect=expect, raw=raw
        )
    CORPUS["run config"] += 1


def graph_doc(data: st.DataObject, base: dict[str, Any]) -> dict[str, Any]:
    doc = json.loads(json.dumps(base))
    for lk in doc["links"]:
        lk["length_km"] = data.draw(st.floats(1.0, 400.0))
        if data.draw(st.booleans()):
            lk["capacity_mbps"] = data.draw(st.floats(1.0, 10_000.0))
    return doc


def graph_case(data: st.DataObject, capsys, base: dict[str, Any]) -> None:
    valid = graph_doc(data, base)
    if data.draw(st.booleans()):
        raw, expect = json.dumps(valid).encode(), "ok"
    else:
        doc, _ = mutate(data, valid)
        raw, how = corrupt(data, json.dumps(doc).encode())
        broken = how == "utf8"
        expect = "error" if broken else "either"
        number = data.draw(
            st.sampled_from(["length_km", "capacity_mbps", "circuits", "site id", "link end", None])
        )
        sites = isinstance(doc, dict) and isinstance(doc.get("sites"), list) and doc["sites"]
        if number in ("site id", "link end") and not broken and sites:
            if number == "site id" and isinstance(sites[0], dict) and "id" in sites[0]:
                doc["sites"].append(dict(sites[0]))  # a duplicate id
                raw, expect = json.dumps(doc).encode(), "error"
            elif number == "link end" and isinstance(doc.get("links"), list) and doc["links"]:
                if isinstance(doc["links"][0], dict):
                    doc["links"][0]["b"] = "no_such_site"
                    raw, expect = json.dumps(doc).encode(), "error"
        elif number is not None and not broken and isinstance(doc, dict) and doc.get("links"):
            bad = data.draw(st.sampled_from([math.nan, math.inf, -1.0, 0.0, 1e30, -1e30]))
            if number == "circuits":
                bad = data.draw(st.sampled_from([-1, 0, 10**30]))
            if isinstance(doc["links"], list) and isinstance(doc["links"][0], dict):
                doc["links"][0][number] = bad
                raw, expect = json.dumps(doc).encode(), "error"  # a bad number is refused
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "g.json"
        p.write_bytes(raw)
        check(["network", "show", str(p)], capsys, expect=expect, raw=raw)
    CORPUS["graph json"] += 1


ACCESS_BASE = {"plc_subchannels": 8, "g5_subchannels": 3}


def access_doc(data: st.DataObject) -> dict[str, Any]:
    return {
        **ACCESS_BASE,
        "devices": data.draw(st.integers(1, 8)),
        "quota": data.draw(st.integers(1, 2)),
        "epochs": data.draw(st.integers(1, 2)),
        "slots_per_epoch": data.draw(st.integers(1, 2)),
        "alpha": data.draw(st.floats(0.0, 900.0)),
        "sinr_min_db": data.draw(st.floats(8.0, 16.0)),
        "cost_per_gbit": data.draw(st.floats(0.0, 1.0)),
        "bidding": {"max_rounds": data.draw(st.integers(1, 50))},
    }


def access_case(data: st.DataObject, capsys) -> None:
    raw, expect = _case(data, access_doc(data))
    if expect != "ok" and data.draw(st.booleans()):  # a huge count: refused, not run for days
        doc = access_doc(data)
        key = data.draw(st.sampled_from(["epochs", "slots_per_epoch", "plc_subchannels"]))
        doc[key] = data.draw(st.sampled_from([10**10, 2**63, -3]))
        raw, expect = _yaml(doc), "error"
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "access.yaml"
        p.write_bytes(raw)
        argv = ["access", "simulate", "--policies", "matching", "--config", str(p)]
        check([*argv, "--json", str(Path(d) / "r.json")], capsys, expect=expect, raw=raw)
        assert sorted(x.name for x in Path(d).iterdir()) in (
            ["access.yaml"],
            ["access.yaml", "r.json"],
        )
    CORPUS["access config"] += 1


def distill_doc(data: st.DataObject) -> dict[str, Any]:
    return {
        "epochs": data.draw(st.integers(1, 5)),
        "lr": data.draw(st.floats(1e-4, 1e-2)),
        "tau": data.draw(st.floats(0.01, 1.0)),
        "lambda_hard": data.draw(st.floats(0.0, 5.0)),
        "batch_size": data.draw(st.sampled_from([64, 128])),
        "seed": data.draw(st.integers(0, 100)),
    }


def distill_case(data: st.DataObject, capsys, library: Path) -> None:
    raw, expect = _case(data, distill_doc(data))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "distill.yaml"
        p.write_bytes(raw)
        out = Path(d) / "s"
        argv = ["distill", "--library", str(library), "--config", str(p), "--out", str(out)]
        if check(argv, capsys, expect=expect, raw=raw) == 0:
            assert (out / "stub.json").is_file()
        assert sorted(x.name for x in Path(d).iterdir()) in (
            ["distill.yaml"],
            ["distill.yaml", "s"],
        )
    CORPUS["distill config"] += 1


FIELDS = ["hops", "grant", "latency_over_bound", "util_after", "min_trust", "kbps"]


def rules_doc(data: st.DataObject) -> dict[str, Any]:
    leaf = st.fixed_dictionaries(
        {
            "field": st.sampled_from(FIELDS),
            "op": st.sampled_from(["lt", "le", "gt", "ge", "eq", "ne"]),
            "value": st.floats(0.0, 100.0),
        }
    )
    pred = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.fixed_dictionaries({"not": inner}),
            st.fixed_dictionaries({"all": st.lists(inner, min_size=1, max_size=3)}),
            st.fixed_dictionaries({"any": st.lists(inner, min_size=1, max_size=3)}),
        ),
        max_leaves=6,
    )
    n = data.draw(st.integers(0, 3))
    rules = []
    for i in range(n):
        soft = data.draw(st.booleans())
        r: dict[str, Any] = {"id": f"fz_{i}", "severity": "soft" if soft else "hard"}
        if soft:
            r["weight"] = data.draw(st.floats(0.01, 5.0))
        r["violates"] = data.draw(pred)
        rules.append(r)
    return {
        "version": 1,
        "params": {"util_knee": data.draw(st.floats(0.1, 0.99))},
        "rules": rules,
    }


def rules_case(data: st.DataObject, capsys) -> None:
    valid = rules_doc(data)
    raw, expect = _case(data, valid)
    if expect != "ok" and data.draw(st.booleans()):  # a known-bad value at a known place
        doc = json.loads(json.dumps(valid))
        which = data.draw(st.sampled_from(["nan", "version", "deep", "op"]))
        if which == "nan":
            doc["params"]["util_knee"] = math.nan
        elif which == "version":
            doc["version"] = data.draw(st.sampled_from([0, 2, 99, "one"]))
        elif which == "deep":
            n = data.draw(st.integers(17, 3000))
            deep = "{not: " * n + "{field: hops, op: gt, value: 1}" + "}" * n
            doc["rules"] = [{"id": "deep", "severity": "hard", "violates": "DEEP"}]
        else:
            doc["rules"] = [
                {
                    "id": "op",
                    "severity": "hard",
                    "violates": {"field": "hops", "op": "is", "value": 1},
                }
            ]
        raw, expect = _yaml(doc), "error"
        if which == "deep":
            raw = raw.replace(b"DEEP", deep.encode())
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "r.yaml"
        f.write_bytes(raw)
        check(["rules", "check", str(f)], capsys, expect=expect, raw=raw)
    CORPUS["rule file"] += 1


# -------------------------------------------------------------------------- fixtures
@pytest.fixture
def stub_work(monkeypatch):
    """Teacher training and the pipeline's stages stubbed after their validation."""
    import pcnalloc.pipeline.run as prun
    import pcnalloc.teacher as teacher
    from pcnalloc.teacher.train import TrainResult

    def fake_train(cfg, out_dir, **kw):  # type: ignore[no-untyped-def]
        ck = Path(out_dir) / "step_00000001.pt"
        ck.write_bytes(b"stub")
        return TrainResult(step=1, episodes=0, updates=0, checkpoint=ck, wall_s=0.0)

    monkeypatch.setattr(teacher, "train_teacher", fake_train)
    monkeypatch.setattr(
        prun, "_stages", lambda *a, **kw: {"headline": [], "timings": {}, "verdict": []}
    )


@pytest.fixture
def stub_distill(monkeypatch):
    """The distillation stubbed after its config is validated (and its --out checked)."""
    import pcnalloc.distill.fidelity as fidelity
    import pcnalloc.distill.run as drun

    def fake(library, *, out_dir, **kw):  # type: ignore[no-untyped-def]
        (Path(out_dir) / "stub.json").write_text("{}")
        return {}

    monkeypatch.setattr(drun, "run_distillation", fake)
    monkeypatch.setattr(fidelity, "fidelity_table", lambda *a, **k: "")


@pytest.fixture(scope="module")
def fuzz_library(tmp_path_factory: pytest.TempPathFactory, tiny_graph_file: Path) -> Path:
    out = tmp_path_factory.mktemp("fuzzlib") / "lib"
    args = ["library", "build", "--teacher", "ksp-ff", "--out", str(out), "--cases"]
    args += [str(tiny_graph_file), "--episodes", "1", "--requests", "20", "--executor", "serial"]
    assert main(args) == 0
    return out


@pytest.fixture(scope="module")
def graph_base(tiny_graph_file: Path) -> dict[str, Any]:
    return json.loads(tiny_graph_file.read_text())


def _fast(n: int):
    return settings(max_examples=n, **SETTINGS)


def _slow(n: int):
    return settings(max_examples=n * SLOW_FACTOR, **SETTINGS)


N_GRAPH, N_RULES, N_SIM, N_TEACHER, N_RUN, N_ACCESS, N_DISTILL = 50, 60, 12, 40, 30, 20, 30


@_fast(N_GRAPH)
@given(data=st.data())
def test_fuzz_graph_json(data, capsys, graph_base) -> None:
    graph_case(data, capsys, graph_base)


@_fast(N_RULES)
@given(data=st.data())
def test_fuzz_rule_files(data, capsys) -> None:
    rules_case(data, capsys)


@_fast(N_SIM)
@given(data=st.data())
def test_fuzz_simulate_config(data, capsys, tiny_graph_file) -> None:
    simulate_case(data, capsys, tiny_graph_file)


@_fast(N_TEACHER)
@given(data=st.data())
def test_fuzz_teacher_config(data, capsys, tiny_graph_file, stub_work) -> None:
    teacher_case(data, capsys, tiny_graph_file)


@_fast(N_RUN)
@given(data=st.data())
def test_fuzz_run_config(data, capsys, tiny_graph_file, stub_work) -> None:
    run_case(data, capsys, tiny_graph_file)


@_fast(N_ACCESS)
@given(data=st.data())
def test_fuzz_access_config(data, capsys) -> None:
    access_case(data, capsys)


@_fast(N_DISTILL)
@given(data=st.data())
def test_fuzz_distill_config(data, capsys, fuzz_library, stub_distill) -> None:
    distill_case(data, capsys, fuzz_library)


@pytest.mark.slow
@_slow(N_GRAPH)
@given(data=st.data())
def test_fuzz_graph_json_large(data, capsys, graph_base) -> None:
    graph_case(data, capsys, graph_base)


@pytest.mark.slow
@_slow(N_RULES)
@given(data=st.data())
def test_fuzz_rule_files_large(data, capsys) -> None:
    rules_case(data, capsys)


@pytest.mark.slow
@_slow(N_SIM)
@given(data=st.data())
def test_fuzz_simulate_config_large(data, capsys, tiny_graph_file) -> None:
    simulate_case(data, capsys, tiny_graph_file)


@pytest.mark.slow
@_slow(N_TEACHER)
@given(data=st.data())
def test_fuzz_teacher_config_large(data, capsys, tiny_graph_file, stub_work) -> None:
    teacher_case(data, capsys, tiny_graph_file)


@pytest.mark.slow
@_slow(N_RUN)
@given(data=st.data())
def test_fuzz_run_config_large(data, capsys, tiny_graph_file, stub_work) -> None:
    run_case(data, capsys, tiny_graph_file)


@pytest.mark.slow
@_slow(N_ACCESS)
@given(data=st.data())
def test_fuzz_access_config_large(data, capsys) -> None:
    access_case(data, capsys)


@pytest.mark.slow
@_slow(N_DISTILL)
@given(data=st.data())
def test_fuzz_distill_config_large(data, capsys, fuzz_library, stub_distill) -> None:
    distill_case(data, capsys, fuzz_library)
