"""The one plotting helper: Agg figures without pyplot, PNGs written atomically, and no
module of the package switching matplotlib's backend on its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pcnalloc

pytest.importorskip("matplotlib")

ROOT = Path(pcnalloc.__file__).parent


def backend_switches(root: Path) -> list[str]:
    """Places outside core/plotting.py that call ``matplotlib.use`` or import pyplot."""
    found = []
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel in ("core/plotting.py", "envs/render.py"):  # render: the human window
            continue
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "use"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "matplotlib"
            ):
                found.append(f"{rel}:{node.lineno} matplotlib.use")
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module + "." + a.name for a in node.names]
            found += [f"{rel}:{node.lineno} {n}" for n in names if "matplotlib.pyplot" in n]
    return found


def test_figures_are_made_by_the_one_helper() -> None:
    assert backend_switches(ROOT) == []


def test_the_rule_catches_a_planted_backend_switch(tmp_path) -> None:
    (tmp_path / "plots.py").write_text(
        'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\n'
    )
    assert len(backend_switches(tmp_path)) == 2


def test_save_png_writes_a_png_and_leaves_the_backend_and_pyplot_alone(tmp_path) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    from pcnalloc.core.plotting import png_bytes, save_png, subplots

    before, open_before = matplotlib.get_backend(), plt.get_fignums()
    fig, axes = subplots(1, 2, figsize=(4, 2))
    axes[0].plot([0, 1], [1, 0])
    out = save_png(fig, tmp_path / "sub" / "f.png", dpi=50)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["f.png"]  # no temp left behind
    assert png_bytes(fig)[:4] == b"\x89PNG"
    assert matplotlib.get_backend() == before and plt.get_fignums() == open_before


def test_save_png_onto_a_folder_is_one_typed_error(tmp_path) -> None:
    from pcnalloc.core.plotting import save_png, subplots
    from pcnalloc.errors import OutputPathError

    fig, _ = subplots()
    with pytest.raises(OutputPathError):
        save_png(fig, tmp_path)
