"""`pcnalloc simulate`: the config file's case and load hold unless a flag is given."""

from __future__ import annotations

import json
from pathlib import Path

from pcnalloc.cli import main


def test_config_file_is_not_overwritten_by_flag_defaults(tmp_path: Path, tiny_graph_file) -> None:
    cfg = tmp_path / "env.yaml"
    cfg.write_text(f"network: {{case: '{tiny_graph_file}'}}\ntraffic: {{load: 1.3}}\n")
    out = tmp_path / "r.json"
    assert main(["simulate", "--config", str(cfg), "--requests", "50", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["case"] == str(tiny_graph_file) and r["load"] == 1.3
    # a flag, when given, does override the file
    assert (
        main(
            [
                "simulate",
                "--config",
                str(cfg),
                "--load",
                "0.5",
                "--requests",
                "50",
                "--scenario",
                "storm",
                "--json",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    r = json.loads(out.read_text())
    assert r["load"] == 0.5 and r["metrics"]["faults"] >= 1


def test_bad_scenario_and_output_folder_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["simulate", "--scenario", "hurricane"]) == 2
    assert main(["simulate", "--json", str(tmp_path), "--requests", "10"]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 2 and "hurricane" in err[0] and "is a folder" in err[1]


def test_audited_simulation_verifies_with_the_pinned_key(tmp_path: Path, tiny_graph_file) -> None:
    assert main(["keys", "new", "--out", str(tmp_path / "k")]) == 0
    log = tmp_path / "audit.jsonl"
    argv = ["simulate", "--case", str(tiny_graph_file), "--requests", "40", "--audit", str(log)]
    assert main([*argv, "--key", str(tmp_path / "k" / "pcnalloc.key")]) == 0
    pub = str(tmp_path / "k" / "pcnalloc.pub")
    assert main(["audit", "verify", str(log), "--public-key", pub]) == 0  # tail signed at exit
