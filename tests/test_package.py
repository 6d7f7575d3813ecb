"""Package conventions: cheap import that registers the envs, --version, license metadata."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import metadata, version

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
