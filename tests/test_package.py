"""Package conventions: cheap import that registers the envs, --version, license metadata,
shell completion, ranges pinned by constraints.txt, one output root."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata, version

import pytest

from pcnalloc.cli import main


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return out.stdout.strip()


def test_import_pcnalloc_is_cheap_and_registers_the_env() -> None:
    out = _run(
        "import sys, pcnalloc, gymnasium as gym\n"
        "heavy = [m for m in ('torch', 'pandapower', 'pcnalloc.envs') if m in sys.modules]\n"
        "print(heavy, 'pcnalloc/PowerComm-v0' in gym.registry)"
    )
    assert out == "[] True"


CLI_HEAVY = ("torch", "pandapower", "pcnalloc.envs", "scipy.stats", "pcnalloc.access.model")
"""Modules the command line must not load to start (each costs 0.3-10 s of start-up)."""


def _cli_heavy(extra: str = "") -> list[str]:
    return eval(
        _run(
            f"import sys\n{extra}import pcnalloc.cli\n"
            f"print([m for m in {CLI_HEAVY!r} if m in sys.modules])"
        )
    )


def test_the_command_line_starts_without_the_heavy_stacks() -> None:
    """Option defaults and help texts come from light config modules (the first message
    within a second): a verb that reads them through a heavy module slows every command."""
    assert _cli_heavy() == []


def test_the_start_check_catches_a_planted_heavy_import() -> None:
    assert _cli_heavy("import scipy.stats\n") == ["scipy.stats"]


def test_gym_make_after_import_pcnalloc_only() -> None:
    out = _run(
        "import pcnalloc, gymnasium as gym\n"
        "env = gym.make('pcnalloc/PowerComm-v0', config={'network': {'case': 'case14'},"
        " 'traffic': {'warm_start': False}}, observation='compact')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(sorted(obs)[:2], env.action_space.n)"
    )
    assert out.endswith(" 13")


def test_version_flag_prints_the_installed_version(capsys) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"pcnalloc {version('pcnalloc')}"


def test_license_is_an_spdx_expression() -> None:
    md = metadata("pcnalloc")
    assert md.get("License-Expression") == "Apache-2.0"


def _env(**extra: str) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_shell_completion_completes_verbs() -> None:
    """Typer's completion protocol: the shell sets _PCNALLOC_COMPLETE and the words so far."""
    exe = [sys.executable, "-c", "import sys; from pcnalloc.cli import main; sys.exit(main())"]
    out = subprocess.run(
        exe,
        env=_env(_PCNALLOC_COMPLETE="complete_bash", COMP_WORDS="pcnalloc netw", COMP_CWORD="1"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert out.stdout.split() == ["network"]
    # the shell named explicitly: Typer otherwise detects the parent process's shell, which
    # under make or CI is /bin/sh ("Shell sh not supported"); Typer's own switch for this
    script = subprocess.run(
        [*exe, "--show-completion", "bash"],
        env=_env(_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "_PCNALLOC_COMPLETE=complete_bash" in script.stdout


def _requirement_names(reqs: list[str]) -> dict[str, str]:
    import re

    out = {}
    for r in reqs:
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)", r)
        assert m is not None, r
        out[m.group(1).lower().replace("_", "-")] = m.group(3)
    return out


def exact_pins(reqs: list[str]) -> list[str]:
    """Requirements pinned to one version (``==`` / ``===``), which clash with users' stacks."""
    return [f"{n}{spec}" for n, spec in _requirement_names(reqs).items() if "==" in spec]


def test_project_declares_ranges_and_constraints_pin_them() -> None:
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += [r for r in extra if not r.startswith("pcnalloc")]
    assert exact_pins(reqs) == []
    assert exact_pins(["torch==2.4.0", "numpy>=2"]) == ["torch==2.4.0"]  # planted: caught
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            assert ver, f"constraints.txt line {line!r} is not an exact pin"
            pins[name.strip().lower()] = ver
    unpinned = sorted(set(_requirement_names(reqs)) - set(pins))
    assert unpinned == [], f"declared but not pinned in constraints.txt: {unpinned}"


def test_a_license_file_ships_with_the_distribution() -> None:
    from importlib.metadata import distribution

    md = metadata("pcnalloc")
    assert "LICENSE" in (md.get_all("License-File") or [])
    files = [str(f) for f in distribution("pcnalloc").files or []]
    assert any(f.endswith("LICENSE") for f in files), files


def _path_defaults() -> list[tuple[str, str, str]]:
    """(verb, option, default) for every option whose default is a filesystem path."""
    from pathlib import PurePath

    import typer

    from pcnalloc.cli import app

    def walk(cmd, words):  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, [*words, name])
        else:
            yield " ".join(words), cmd

    return [
        (verb, p.name or "", str(p.default))
        for verb, cmd in walk(typer.main.get_command(app), [])
        for p in cmd.params
        if isinstance(p.default, PurePath)
    ]


def test_every_verb_writes_under_one_output_root() -> None:
    defaults = _path_defaults()
    assert len(defaults) >= 7  # evaluate, run, tune, access, distributed, trust have one
    assert outside_out(defaults) == [], f"output defaults outside out/: {outside_out(defaults)}"
    planted = ("teacher train", "out", "runs/teacher")  # the old second root is caught
    assert outside_out([*defaults, planted]) == [planted]


def outside_out(defaults: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The (verb, option, default) whose default path is not under ``out/``."""
    return [d for d in defaults if d[2].split("/")[0] != "out"]
