"""The main job on the tiny config: every artifact and a report; a rerun reuses every stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcnalloc.errors import ConfigError, UnknownCaseError, UnknownPolicyError
from pcnalloc.pipeline import load_run_config, run_pipeline

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "tiny.yaml"
STAGES = ("network", "teacher", "library", "distill", "compile", "evaluate", "report")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("run")
    summary = run_pipeline(load_run_config(TINY), out)
    return out, summary


def test_every_stage_leaves_its_artifacts(tiny_run: tuple[Path, dict]) -> None:
    out, summary = tiny_run
    for stage in STAGES:
        rec = json.loads((out / stage / "stage.json").read_text())
        assert rec["stage"] == stage and len(rec["key"]) == 16
    assert (out / "network" / "network_map.png").stat().st_size > 10_000
    assert list((out / "teacher").glob("*.pt")), "no teacher checkpoint"
    assert list((out / "library").glob("*.parquet")), "no library file"
    assert (out / "distill" / "student.pt").is_file()
    art = out / "compile" / "artifact"
    assert (art / "manifest.json").is_file() and (art / "manifest.sig").is_file()
    sweep = json.loads((out / "evaluate" / "sweep.json").read_text())
    policies = {a["policy"] for a in sweep["aggregate"]}
    assert {"teacher", "student", "student+rules", "edge+rules", "ksp-ff"} <= policies
    assert all("@" not in p for p in policies), "reports must name policies, not paths"
    report = (out / "report.md").read_text()
    assert "## Headline" in report and "## Stage timings" in report
    # scenario families: one section each and a paired table with verdicts
    fams = json.loads((out / "evaluate" / "families.json").read_text())
    assert fams["scenarios"] == ["storm", "fiber-cut"] and fams["paired"]
    assert {r["weighted_value_ratio"]["verdict"] for r in fams["paired"]} <= {
        "ahead",
        "level",
        "behind",
    }
    assert "### Scenario family `storm`" in report and "### Scenario family `fiber-cut`" in report
    assert "+rules+rules" not in report
    for png in (
        "utilisation_map.png",
        "latency_cdf.png",
        "decision_latency.png",
        "value_vs_load.png",
        "ablation.png",
    ):
        assert (out / "report" / png).stat().st_size > 5_000, png
    # The latency figure times the whole audited edge decision, stage by stage.
    lat = json.loads((out / "report" / "report.json").read_text())["decision_latency_us"]
    assert lat["whole_decision"] and set(lat["stages_p50"]) >= {"features", "model", "audit"}
    assert lat["p50"] >= sum(lat["stages_p50"].values()) * 0.5
    # The guarded student never executes a hard violation.
    guarded = [r for r in summary["headline"] if r["policy"].endswith("+rules")]
    assert guarded and all(r["violations"] == 0 for r in guarded)


def test_artifact_verifies_with_the_run_key(tiny_run: tuple[Path, dict]) -> None:
    from pcnalloc.edge.artifact import load_artifact

    out, _ = tiny_run
    art = load_artifact(out / "compile" / "artifact", out / "compile" / "keys" / "pcnalloc.pub")
    assert art.manifest["input"]["name"] == "compact"


def test_rerun_reuses_every_stage(tiny_run: tuple[Path, dict]) -> None:
    out, first = tiny_run
    again = run_pipeline(load_run_config(TINY), out)
    assert all(again["timings"][s]["skipped"] for s in STAGES)
    assert again["headline"] == first["headline"]


def test_bad_input_fails_before_long_work(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("evaluate: {policies: [ksp-ff, no-such-policy]}\n")
    with pytest.raises(UnknownPolicyError, match="no-such-policy"):
        run_pipeline(load_run_config(bad), tmp_path / "out")
    assert not (tmp_path / "out" / "teacher").exists()
    bad.write_text("env: {network: {case: case_nope}}\n")
    with pytest.raises(UnknownCaseError, match="case_nope"):
        run_pipeline(load_run_config(bad), tmp_path / "out")
    bad.write_text("teacher: [not, a, mapping]\n")
    with pytest.raises(ConfigError, match="teacher"):
        load_run_config(bad)
    bad.write_text("library: {episodes: -1\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_run_config(bad)


def test_scenario_option_sets_training_and_evaluated_family() -> None:
    cfg = load_run_config(TINY, scenario="storm")
    assert cfg.env.traffic.scenario == "storm"
    assert cfg.evaluate.scenarios == ("storm",)
    plain = load_run_config(TINY)
    assert plain.env.traffic.scenario is None
    assert load_run_config(None).evaluate.scenarios == ("normal", "storm", "fiber-cut", "mixed")
    with pytest.raises(ConfigError, match="no-such-family"):
        load_run_config(TINY, scenario="no-such-family")


def test_run_cli_rejects_unknown_scenario_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pcnalloc.cli import main

    assert main(["run", "--scenario", "hurricane", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "hurricane" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()
