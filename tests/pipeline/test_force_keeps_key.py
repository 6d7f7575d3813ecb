"""`pcnalloc run --force` reruns the compile stage (its folder is cleared) but never replaces
the signing key: it lives in the key folder outside the output tree, created once."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pcnalloc.export.compile as compile_mod
import pcnalloc.network.builder as builder
from pcnalloc.edge import keys
from pcnalloc.pipeline.config import load_run_config
from pcnalloc.pipeline.stages import StageRunner
from pcnalloc.pipeline.steps import compile_stage, key_dir


class _Bar:
    def start(self, *a: object) -> None:
        pass


def test_force_rerun_keeps_the_signing_key(tmp_path: Path, monkeypatch) -> None:
    signed_with: list[str] = []

    def fake_compile(module, rows, *, private_key, out_dir, **kw):  # type: ignore[no-untyped-def]
        signed_with.append(keys.key_id(keys.load_private_key(private_key).public_key()))
        out_dir.mkdir(parents=True)
        return SimpleNamespace(path=out_dir, parity_max_abs=0.0, int8_agreement=None, model_bytes=1)

    env = SimpleNamespace(network=SimpleNamespace(case="tiny"))
    monkeypatch.setattr(compile_mod, "compile_student", fake_compile)
    monkeypatch.setattr(compile_mod, "load_student_module", lambda p: SimpleNamespace())
    monkeypatch.setattr(compile_mod, "library_rows", lambda folder, key, **kw: ([], env))
    monkeypatch.setattr(builder, "cached_network", lambda case, cfg: None)
    cfg = load_run_config().model_copy(update={"key_dir": str(tmp_path / "keys")})
    out = tmp_path / "out"
    stage = {"folder": "lib"}, {"student": "s.pt"}

    def run(force: bool) -> dict:
        runner = StageRunner(out, force=force)
        return runner.run("compile", 1, lambda d: compile_stage(cfg, *stage, d, _Bar()))

    first = run(False)
    priv = Path(first["private_key"])
    assert key_dir(cfg) == tmp_path / "keys" and out not in priv.parents
    before = priv.read_bytes()
    (out / "compile" / "marker").write_text("from the first run")
    again = run(True)  # --force: the stage folder is cleared and the stage reruns
    assert not (out / "compile" / "marker").exists()
    assert priv.read_bytes() == before and again["private_key"] == first["private_key"]
    assert len(signed_with) == 2 and signed_with[0] == signed_with[1]
    # the public key beside the artifact is the same key
    assert (out / "compile" / "keys" / "pcnalloc.pub").read_bytes() == priv.with_suffix(
        ".pub"
    ).read_bytes()
