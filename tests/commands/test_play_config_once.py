"""``pcnalloc simulate`` and ``rules explain`` take their defaults and help texts from
``SimulateConfig`` / ``ExplainConfig`` (policy, seed, requests, step) and the env config
(case, load), which also check the values."""

from __future__ import annotations

from pathlib import Path

import pytest
from option_fields import Spec, command, mismatches, planted

from pcnalloc.cli import main
from pcnalloc.config import NetworkConfig, TrafficConfig
from pcnalloc.core.play import ExplainConfig, SimulateConfig

SIMULATE: Spec = {name: (SimulateConfig, name, None) for name in ("policy", "seed", "requests")}
EXPLAIN: Spec = {
    **{name: (ExplainConfig, name, None) for name in ("policy", "seed", "step")},
    "case": (NetworkConfig, "case", None),
    "load": (TrafficConfig, "load", None),
}


def test_simulate_options_are_the_config_fields() -> None:
    assert mismatches(command("simulate"), SIMULATE) == []


def test_explain_options_are_the_config_fields() -> None:
    assert mismatches(command("rules", "explain"), EXPLAIN) == []


def test_the_check_catches_a_planted_second_default() -> None:
    sim, ex = command("simulate"), command("rules", "explain")
    with planted(sim, "requests", 2000):
        assert mismatches(sim, SIMULATE) == ["requests"]
    with planted(ex, "load", 1.5), planted(ex, "policy", "cspf-pe"):
        assert mismatches(ex, EXPLAIN) == ["load", "policy"]


@pytest.mark.parametrize(
    "argv", [["simulate", "--policy", ""], ["rules", "explain", "--policy", ""]]
)
def test_a_bad_value_is_one_config_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "policy" in err and "Traceback" not in err and len(err.splitlines()) == 1, err
