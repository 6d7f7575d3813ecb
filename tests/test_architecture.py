"""The package's import graph: dependencies point one way, and the edge runtime has no torch.

The rule, written down: every top-level package of ``pcnalloc`` has a layer (below); a module
may import from its own package and from packages of a strictly LOWER layer, never from the
same layer or above. Function-level imports count too (they are how cycles hide). Since every
edge points down, the graph has no cycle. ``commands``, ``cli`` and ``pipeline`` sit on top
and may use everything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import pcnalloc

LAYERS: dict[str, int] = {
    "errors": 0,
    "fileio": 1,  # raises pcnalloc.errors.OutputPathError
    "registration": 0,
    "config": 1,
    "core": 2,  # core.plotting saves through fileio
    "rules": 3,  # uses core.policy
    "network": 2,
    "traffic": 3,
    "access": 3,
    "envs": 4,
    "baselines": 5,
    "nn": 5,
    "evaluate": 6,
    "teacher": 7,
    "library": 8,
    "distill": 9,
    "twolayer": 12,  # the access student's compile (export) and signed artifact (edge)
    "edge": 10,
    "distributed": 10,
    "export": 11,
    "pipeline": 12,
    "commands": 13,
    "cli": 14,
    "__init__": 14,
}
"""Layer of each top-level package or module (0 = bottom)."""

ROOT = Path(pcnalloc.__file__).parent


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) → places, for every import of another pcnalloc package."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in sorted(ROOT.rglob("*.py")):
        src = f.relative_to(ROOT).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "pcnalloc" and len(parts) > 1 and parts[1] != src:
                    edges[(src, parts[1])].append(f"{f.relative_to(ROOT)}:{node.lineno}")
    return edges


def test_every_package_has_a_layer() -> None:
    found = {
        p.name.removesuffix(".py")
        for p in ROOT.iterdir()
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file())
    }
    assert found <= set(LAYERS), f"give these a layer: {sorted(found - set(LAYERS))}"


def test_imports_point_down_only() -> None:
    bad = [
        f"{a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]}) at {', '.join(where[:3])}"
        for (a, b), where in sorted(import_edges().items())
        if LAYERS[b] >= LAYERS[a]
    ]
    assert not bad, "upward or sideways imports:\n" + "\n".join(bad)


def test_the_rule_catches_a_planted_upward_import(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "pcnalloc"
    (fake / "rules").mkdir(parents=True)
    (fake / "rules" / "__init__.py").write_text("")
    (fake / "rules" / "x.py").write_text("def f():\n    from pcnalloc.envs import y\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert ("rules", "envs") in import_edges()


EDGE_IMPORTS = (
    "import importlib, pkgutil, pcnalloc.edge\n"
    "for m in pkgutil.iter_modules(pcnalloc.edge.__path__):\n"
    "    importlib.import_module('pcnalloc.edge.' + m.name)\n"
)
"""Imports the edge package and every module in it (the service included)."""


def heavy_modules_after(imports: str) -> list[str]:
    """The training-stack modules loaded by a fresh interpreter after ``imports``."""
    code = (
        f"import sys\n{imports}"
        "print(sorted(m for m in ('torch', 'torch_geometric', 'pandapower') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def test_edge_runtime_imports_no_torch_or_pandapower() -> None:
    assert heavy_modules_after(EDGE_IMPORTS) == []


def test_the_edge_check_catches_a_planted_torch_import() -> None:
    pytest.importorskip("torch")
    assert heavy_modules_after(EDGE_IMPORTS + "import torch\n") == ["torch"]
