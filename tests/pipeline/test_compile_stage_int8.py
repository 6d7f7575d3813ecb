"""The main job's compile stage ships int8 when both gates pass (a distilled student, a real
library, the closed loop played) and falls back to fp32, saying why, when a planted fault in
the quantised model makes them refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import pcnalloc.export.compile as compile_mod
from pcnalloc.config import EnvConfig
from pcnalloc.distill.config import distill_config
from pcnalloc.distill.trainer import train_student
from pcnalloc.library import LibrarySpec, LibraryWriter, encode_metadata
from pcnalloc.pipeline.config import load_run_config
from pcnalloc.pipeline.steps import compile_stage

CFG = EnvConfig()


class _Bar:
    def start(self, *a: object) -> None:
        pass


def _library(folder: Path, episodes: int = 6, n: int = 200) -> Path:
    """Rows whose teacher prefers one action, shown as a one-hot in the first A features."""
    spec = LibrarySpec.from_env_config(CFG)
    A, D = spec.n_actions, spec.compact_dim
    meta = encode_metadata(
        spec, env_config=CFG, teacher_sha256="0" * 64, seeds=[0], cases=["c"], loads=[1.0]
    )
    rng = np.random.default_rng(0)
    folder.mkdir()
    with LibraryWriter(folder / "part-00000.parquet", spec=spec, metadata=meta) as w:
        for ep in range(episodes):
            target = rng.integers(0, A, size=n)
            mask = np.ones((n, A), np.int8)
            x = np.zeros((n, D), np.float32)
            x[:, :A] = np.eye(A, dtype=np.float32)[target] + 0.1 * rng.normal(size=(n, A))
            q = (0.2 * x[:, :A] + 0.02 * rng.normal(size=(n, A))).astype(np.float32)
            w.write(
                {
                    "compact": x,
                    "state": x[:, : spec.state_dim].copy(),
                    "q_values": q,
                    "action_mask": mask,
                    "hard": np.zeros((n, A), np.int8),
                    "soft": np.zeros((n, A, spec.n_soft), np.float32),
                    "action": q.argmax(1).astype(np.int16),
                    "greedy": np.ones(n, np.int8),
                    "reward": np.zeros(n, np.float32),
                    "episode_id": np.full(n, ep),
                    "case": "c",
                    "load": np.ones(n, np.float32),
                    "seed": np.full(n, ep),
                    "step": np.arange(n),
                }
            )
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("int8stage")
    lib = _library(root / "lib")
    train_student(lib, kind="edge", cfg=distill_config(epochs=2), out_dir=root / "distill")
    return lib, root / "distill" / "student.pt"


def _cfg(tmp: Path):  # type: ignore[no-untyped-def]
    return load_run_config(
        sets=[
            f"key_dir={tmp / 'keys'}",
            "compile.rows=600",
            "compile.closed_loop_seeds=[500]",
            "compile.closed_loop_requests=80",
        ]
    )


def test_the_compile_stage_ships_int8_through_both_gates(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    lib, student = trained
    res = compile_stage(
        _cfg(tmp_path), {"folder": str(lib)}, {"student": str(student)}, tmp_path / "c", _Bar()
    )
    assert res["int8_rejected"] is None, res["int8_rejected"]
    assert set(res["model_bytes"]) == {"fp32", "int8"}
    assert res["int8_decision_agreement"] >= 0.995 and res["int8_closed_loop_ratio"] >= 0.995
    v = json.loads((Path(res["artifact"]) / "manifest.json").read_text())["validation"]
    assert v["int8_agreement"]["tie_tol_q"] == pytest.approx(1e-3)  # teacher values were read
    assert v["int8_closed_loop"]["seeds"] == [500]


def test_a_planted_fault_makes_the_stage_ship_fp32_and_say_why(
    trained: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compile_mod.quantize_int8

    def perturbed(model: bytes, *a: object, **kw: object) -> bytes:
        m = onnx.load_from_string(real(model, *a, **kw))  # type: ignore[arg-type]
        ints = [t for t in m.graph.initializer if t.data_type == onnx.TensorProto.INT8]
        t = max(ints, key=lambda t: numpy_helper.to_array(t).size)  # a weight matrix
        w = numpy_helper.to_array(t)
        w = np.random.default_rng(3).permutation(w.ravel()).reshape(w.shape).astype(np.int8)
        t.CopyFrom(numpy_helper.from_array(w, t.name))
        return m.SerializeToString()

    monkeypatch.setattr(compile_mod, "quantize_int8", perturbed)
    lib, student = trained
    res = compile_stage(
        _cfg(tmp_path), {"folder": str(lib)}, {"student": str(student)}, tmp_path / "c", _Bar()
    )
    assert "int8 model rejected" in res["int8_rejected"]
    assert set(res["model_bytes"]) == {"fp32"}
    v = json.loads((Path(res["artifact"]) / "manifest.json").read_text())["validation"]
    assert v["int8_refused"]["reason"] == res["int8_rejected"]
