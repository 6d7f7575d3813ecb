"""``pcnalloc distributed gap`` and ``distributed trust`` take their defaults and help texts
from ``GapConfig`` and ``TrustRun`` / ``TrustScenario``, which also check the values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from option_fields import Spec, command, mismatches, planted

from pcnalloc.cli import main
from pcnalloc.commands._common import parse_numbers
from pcnalloc.distributed.config import RATES, GapConfig, TrustRun, TrustScenario
from pcnalloc.evaluate.sweep import parse_seeds

GAP: Spec = {
    "case": (GapConfig, "case", None),
    "policy": (GapConfig, "policy", None),
    "staleness": (
        GapConfig,
        "staleness_s",
        lambda t: tuple(parse_numbers(t, "--staleness", lo_inclusive=True)),
    ),
    "seeds": (GapConfig, "seeds", lambda t: tuple(parse_seeds(t))),
    "requests": (GapConfig, "requests", None),
    "load": (GapConfig, "load", None),
}
TRUST: Spec = {
    "scenario": (TrustRun, "scenario", None),
    "shares": (
        TrustRun,
        "shares",
        lambda t: tuple(parse_numbers(t, "--shares", lo_inclusive=True)),
    ),
    "seeds": (TrustRun, "seeds", lambda t: tuple(parse_seeds(t))),
    "case": (TrustScenario, "case", None),
    "malicious": (TrustScenario, "malicious_sites", None),
    "drop_share": (TrustScenario, "drop_share", None),
    "feedback_share": (TrustScenario, "malicious_feedback_share", None),
    "rate": (TrustScenario, "requests_per_slot", lambda t: RATES.get(t, t)),
    "slots": (TrustScenario, "slots", None),
    "seed": (TrustScenario, "seed", None),
}


def test_gap_options_are_the_gap_fields() -> None:
    assert mismatches(command("distributed", "gap"), GAP) == []


def test_trust_options_are_the_scenario_fields() -> None:
    assert mismatches(command("distributed", "trust"), TRUST) == []


def test_the_check_catches_a_planted_second_default() -> None:
    gap, trust = command("distributed", "gap"), command("distributed", "trust")
    with planted(gap, "staleness", "0,1,10"):
        assert mismatches(gap, GAP) == ["staleness"]
    with planted(trust, "feedback_share", 0.0), planted(trust, "rate", "200"):
        assert mismatches(trust, TRUST) == ["feedback_share", "rate"]


def test_the_scenario_defaults_are_the_verbs() -> None:
    """The verb's 10 % false feedback at the high rate; the class said 0 % and 200 before."""
    sc = TrustScenario()
    assert (sc.malicious_feedback_share, sc.requests_per_slot) == (0.1, RATES["high"]) == (0.1, 400)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["distributed", "gap", "--load", "0"], "load"),
        (
            ["distributed", "gap", "--policy", "ksp-ff", "--seeds", "0-1", "--staleness", "inf"],
            "staleness",
        ),
        (["distributed", "trust", "--scenario", "everything"], "scenario"),
        (["distributed", "trust", "--rate", "fast"], "--rate"),
        (["distributed", "trust", "--shares", "0,1.5"], "--shares"),
    ],
)
def test_a_bad_value_is_one_line_before_any_output(
    argv: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert named in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_reading_the_config_loads_no_env_or_grid_code() -> None:
    code = (
        "import sys, pcnalloc.commands.distributed, pcnalloc.distributed.config; "
        "bad = [m for m in ('torch', 'pandapower', 'pcnalloc.envs', 'pcnalloc.distributed.regions')"
        " if m in sys.modules]; print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
