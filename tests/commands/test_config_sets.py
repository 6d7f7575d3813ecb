"""``--set KEY.PATH=VALUE``: on every verb with ``--config``, checked key by key, one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer

from pcnalloc.cli import app, main
from pcnalloc.config import EnvConfig
from pcnalloc.core.overrides import apply_sets, parse_sets
from pcnalloc.errors import ConfigError
from pcnalloc.pipeline import load_run_config


def test_dotted_keys_nest_and_values_parse_as_yaml() -> None:
    got = parse_sets(
        ["traffic.events.faults_per_hour=0", "traffic.load=1.5", "k_paths=8", "rules="],
        EnvConfig,
    )
    assert got == {
        "traffic": {"events": {"faults_per_hour": 0}, "load": 1.5},
        "k_paths": 8,
        "rules": None,
    }
    file = {"traffic": {"load": 1.0, "scenario": "storm"}, "k_paths": 4}
    merged = apply_sets(file, ["traffic.load=0.5", "k_paths=6", "k_paths=7"], EnvConfig)
    assert merged == {"traffic": {"load": 0.5, "scenario": "storm"}, "k_paths": 7}  # last wins
    assert file["traffic"]["load"] == 1.0  # the file's mapping is left as it was


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("traffic.lod=1", ["traffic.lod", "'lod'", "accepted:", "load", "scenario"]),
        ("trafic.load=1", ["trafic.load", "accepted:", "traffic", "network"]),
        ("traffic.load=-1", ["traffic.load=-1", "greater than 0", "float > 0 and ≤ 10"]),
        ("k_paths=many", ["k_paths=many", "valid integer", "int ≥ 1 and ≤ 16"]),
        ("traffic.load.x=1", ["traffic.load.x", "not a section"]),
        ("k_paths", ["KEY.PATH=VALUE"]),
        ("k_paths=[1", ["k_paths", "not a YAML value"]),
    ],
)
def test_bad_key_or_value_is_one_config_error_naming_it(item: str, words: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sets([item], EnvConfig)
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_run_config_walks_into_the_teacher_overrides() -> None:
    cfg = load_run_config(sets=["teacher.steps=123", "evaluate.requests=77", "env.k_paths=3"])
    assert cfg.teacher.steps == 123 and cfg.evaluate.requests == 77 and cfg.env.k_paths == 3
    with pytest.raises(ConfigError, match=r"teacher\.stepz.*accepted:.*steps"):
        load_run_config(sets=["teacher.stepz=1"])
    with pytest.raises(ConfigError, match=r"teacher\.steps=-4"):
        load_run_config(sets=["teacher.steps=-4"])


def test_simulate_applies_sets_after_the_file(tmp_path: Path, tiny_graph_file) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text("traffic: {load: 1.3}\n")
    out = tmp_path / "r.json"
    argv = ["simulate", "--config", str(cfg), "--requests", "30", "--json", str(out)]
    assert (
        main([*argv, "--set", f"network.case={tiny_graph_file}", "--set", "traffic.load=0.6"]) == 0
    )
    r = json.loads(out.read_text())
    assert r["case"] == str(tiny_graph_file) and r["load"] == 0.6


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["simulate", "--set", "traffic.lod=1"], ["traffic.lod", "accepted:"]),
        (["simulate", "--set", "traffic.load=-1"], ["traffic.load=-1", "float > 0"]),
        (["run", "--set", "evaluate.requestz=5"], ["evaluate.requestz", "accepted:"]),
        (["teacher", "train", "--set", "steps=0"], ["steps=0", "int ≥ 1"]),
        (["distill", "--library", "x", "--set", "tau=hot"], ["tau=hot", "float"]),
        (["access", "simulate", "--set", "emi.nope=1"], ["emi.nope", "accepted:"]),
    ],
)
def test_cli_bad_set_exits_2_with_one_line(tmp_path: Path, capsys, argv, words) -> None:
    out = ["--out", str(tmp_path / "o")] if argv[0] in ("run", "teacher", "distill") else []
    assert main([*argv, *out]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "o").exists()


def _verbs_missing_set(cmd, path: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    subs = getattr(cmd, "commands", None)
    if subs:
        return [m for name, sub in subs.items() for m in _verbs_missing_set(sub, [*path, name])]
    flags = {o for p in cmd.params for o in p.opts}
    return [" ".join(path)] if "--config" in flags and "--set" not in flags else []


def test_every_verb_with_config_takes_set() -> None:
    root = typer.main.get_command(app)
    assert _verbs_missing_set(root, []) == []
    planted = typer.Typer()

    @planted.command("a")
    def a(config: str = typer.Option(None, "--config")) -> None: ...

    @planted.command("b")
    def b() -> None: ...

    assert _verbs_missing_set(typer.main.get_command(planted), []) == ["a"]
