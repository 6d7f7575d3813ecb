"""The int8 gates: decision-relevant agreement (row by row, ties and masks), the closed-loop
value check, quantisation settings, the fp32 fallback's record and bad settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from pcnalloc.cli import main
from pcnalloc.config import EnvConfig
from pcnalloc.distill.metrics import CLEAR_GAP
from pcnalloc.edge import keys
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.envs.observation import compact_dim
from pcnalloc.errors import ConfigError
from pcnalloc.export.compile import (
    ClosedLoopRejected,
    CompileError,
    QuantizationRejected,
    compile_student,
    compile_with_fallback,
    export_onnx,
    gate_options,
    library_decisions,
    library_rows,
    onnx_logits,
)
from pcnalloc.export.config import CLEAR_GAP_Q, CompileConfig
from pcnalloc.export.gate import (
    ClosedLoopSpec,
    closed_loop_check,
    decision_agreement,
    rowwise_logits,
)
from pcnalloc.export.quant import QuantSettings, quantize_int8
from pcnalloc.library import LibrarySpec, LibraryWriter, encode_metadata
from pcnalloc.pipeline import load_run_config
from pcnalloc.traffic.catalog import load_catalog

CFG = EnvConfig()
CAT = load_catalog(None, max_levels=CFG.grant_levels)
D, A = compact_dim(CAT, CFG), CFG.n_actions


def mlp(seed: int = 0, hidden: int = 32) -> torch.nn.Sequential:
    """A student with clear preferences (margins ≫ the int8 step), like a trained one."""
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(D, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, A))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        m[2].weight.mul_(0.1)
        m[2].bias.copy_(torch.arange(A, 0, -1, dtype=torch.float32) * 0.5)  # reject last
    m.input_key = "compact"
    return m.eval()


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(256, D)).astype(np.float32)


@pytest.fixture(scope="module")
def priv():
    return keys.generate_keypair()[0]


def perturb_weight(q: bytes) -> bytes:
    """A quantised model with one weight tensor scrambled (its int8 values permuted)."""
    model = onnx.load_from_string(q)
    ints = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert ints, "the quantised graph holds int8 weights"
    t = max(ints, key=lambda t: numpy_helper.to_array(t).size)  # a weight, not a zero point
    w = numpy_helper.to_array(t)
    w = np.random.default_rng(3).permutation(w.ravel()).reshape(w.shape)
    t.CopyFrom(numpy_helper.from_array(w.astype(np.int8), t.name))
    return model.SerializeToString()


# ------------------------------------------------------------------ decision agreement
def test_ties_agree_masked_picks_never_do() -> None:
    fp32 = np.array([[3.0, 2.0, 0.0], [3.0, 2.0, 0.0], [0.0, 3.0, 2.0], [1.0, 0.0, 2.0]])
    int8 = np.array([[3.0, 2.0, 0.0], [2.0, 3.0, 0.0], [0.0, 2.0, 3.0], [1.0, 0.0, 2.0]])
    q = np.array([[1.0, 0.5, 0.0], [1.0, 1.0 - 1e-4, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 0]])
    ag = decision_agreement(fp32, int8, q_values_NA=q, action_mask_NA=mask, tie_tol_q=1e-3)
    # row 0 same pick; row 1 a tie within 1e-3; row 2 ties in value but is masked; row 3
    # both pick the masked action 2 (raw agreement): not judged (fp32's own masked
    # proposal), and counted as a disagreement in decision_all
    assert ag.raw == 0.5 and ag.decision == pytest.approx(2 / 3) and ag.decision_all == 0.5
    assert ag.ties == 1 and ag.masked_picks == 2 and ag.fp32_masked_picks == 1
    assert ag.judged_rows == 3
    strict = decision_agreement(fp32, int8, q_values_NA=q, action_mask_NA=mask, tie_tol_q=0)
    assert strict.decision == pytest.approx(1 / 3) and strict.decision_all == 0.25
    # without teacher values only the logit tie applies (0 = off)
    assert decision_agreement(fp32, int8).decision == 0.5
    assert decision_agreement(fp32, int8, tie_tol_logit=1.0).decision == 1.0


def test_agreement_refuses_bad_shapes_and_tolerances() -> None:
    z = np.zeros((2, 3))
    with pytest.raises(ConfigError, match="equal"):
        decision_agreement(z, np.zeros((2, 4)))
    with pytest.raises(ConfigError, match="q_values has shape"):
        decision_agreement(z, z, q_values_NA=np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="≥ 0"):
        decision_agreement(z, z, tie_tol_q=-1)


def test_the_tie_tolerance_is_the_distillation_clear_gap() -> None:
    assert CLEAR_GAP_Q == CLEAR_GAP == CompileConfig().tie_tol_q


def test_row_by_row_matches_a_batch_one_run(rows: np.ndarray) -> None:
    q = quantize_int8(export_onnx(mlp(), "compact", D))
    z1 = rowwise_logits(q, "compact", rows[:5])
    for i in range(5):
        assert np.array_equal(z1[i], onnx_logits(q, "compact", rows[i : i + 1])[0])


# ------------------------------------------------------------------ the gate in compile
def test_a_faithful_int8_model_ships_with_both_agreements(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    res = compile_student(
        mlp(), rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a", int8=True
    )
    v = res.manifest["validation"]
    assert res.int8_agreement == v["int8_argmax_agreement"] == v["int8_agreement"]["raw"]
    assert res.int8_decision_agreement == v["int8_decision_agreement"] >= 0.995
    assert v["int8_quantization"]["mode"] == "dynamic"
    assert "int8" in load_artifact(tmp_path / "a", priv.public_key()).models


def test_the_gate_refuses_a_perturbed_weight(tmp_path: Path, rows: np.ndarray, priv) -> None:
    out = tmp_path / "a"
    with pytest.raises(QuantizationRejected, match="decision-relevant agreement") as ei:
        compile_student(
            mlp(),
            rows,
            env_config=CFG,
            private_key=priv,
            out_dir=out,
            int8=True,
            int8_hook=perturb_weight,
        )
    assert ei.value.agreement < 0.995 and ei.value.raw is not None
    assert ei.value.details["agreement"]["rows"] == len(rows)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_value_ties_do_not_excuse_a_perturbed_weight(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    """Teacher values that tie nowhere: the perturbed model is refused with decisions too."""
    q = np.random.default_rng(5).normal(size=(len(rows), A)).astype(np.float32)
    mask = np.ones((len(rows), A), np.int8)
    with pytest.raises(QuantizationRejected):
        compile_student(
            mlp(),
            rows,
            env_config=CFG,
            private_key=priv,
            out_dir=tmp_path / "a",
            int8=True,
            int8_hook=perturb_weight,
            decisions=(q, mask),
        )


def test_an_int8_graph_onnxruntime_cannot_run_is_refused(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    def break_graph(q: bytes) -> bytes:
        model = onnx.load_from_string(q)
        t = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8)
        t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
        return model.SerializeToString()

    with pytest.raises(QuantizationRejected, match="onnxruntime cannot run it"):
        compile_student(
            mlp(),
            rows,
            env_config=CFG,
            private_key=priv,
            out_dir=tmp_path / "a",
            int8=True,
            int8_hook=break_graph,
        )


def test_fallback_ships_fp32_and_records_the_refusal(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    res, note = compile_with_fallback(
        mlp(),
        rows,
        int8=True,
        env_config=CFG,
        private_key=priv,
        out_dir=tmp_path / "a",
        int8_hook=perturb_weight,
    )
    assert note is not None and "int8 model rejected" in note
    assert res.model_bytes.keys() == {"fp32"} and res.int8_refused is not None
    m = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert m["validation"]["int8_refused"]["reason"] == note
    assert m["validation"]["int8_refused"]["agreement"]["decision"] < 0.995


# ------------------------------------------------------------------ closed loop
SPEC = ClosedLoopSpec(seeds=(500,), requests=60, min_ratio=0.995)


def reject_always(q: bytes) -> bytes:
    """The int8 model with a huge bias on the reject action: it never admits anything."""
    model = onnx.load_from_string(q)
    for t in model.graph.initializer:
        b = numpy_helper.to_array(t)
        if b.shape == (A,) and b.dtype == np.float32:
            b = b.copy()
            b[-1] = 1e6
            t.CopyFrom(numpy_helper.from_array(b, t.name))
    return model.SerializeToString()


def test_closed_loop_keeps_a_faithful_model_and_refuses_a_planted_fault(rows: np.ndarray) -> None:
    fp32 = export_onnx(mlp(), "compact", D)
    same = closed_loop_check(fp32, fp32, CFG, SPEC)
    assert same.ratio == 1.0 and same.passed and same.identical_episodes == 1
    assert same.fp32_value > 0
    bad = closed_loop_check(fp32, reject_always(quantize_int8(fp32)), CFG, SPEC)
    assert bad.int8_value < bad.fp32_value and not bad.passed


def test_compile_refuses_int8_that_loses_closed_loop_value(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    """Past an agreement gate set to 0, only the closed-loop check stands in the way."""
    res, note = compile_with_fallback(
        mlp(),
        rows,
        int8=True,
        env_config=CFG,
        private_key=priv,
        out_dir=tmp_path / "a",
        min_agreement=0.0,
        closed_loop=SPEC,
        int8_hook=reject_always,
    )
    assert note is not None and "closed-loop weighted value" in note
    assert res.model_bytes.keys() == {"fp32"}
    assert res.int8_refused is not None and not res.int8_refused["closed_loop"]["ratio"] >= 0.995
    with pytest.raises(ClosedLoopRejected):
        compile_student(
            mlp(),
            rows,
            env_config=CFG,
            private_key=priv,
            out_dir=tmp_path / "b",
            int8=True,
            min_agreement=0.0,
            closed_loop=SPEC,
            int8_hook=reject_always,
        )
    ok = compile_student(
        mlp(),
        rows,
        env_config=CFG,
        private_key=priv,
        out_dir=tmp_path / "c",
        int8=True,
        closed_loop=SPEC,
    )
    assert ok.closed_loop is not None and ok.closed_loop.passed
    assert ok.manifest["validation"]["int8_closed_loop"]["ratio"] == ok.closed_loop.ratio


# ------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "settings",
    [
        QuantSettings(per_channel=True),
        QuantSettings(mode="static", format="qdq"),
        QuantSettings(mode="static", format="qoperator", keep_fp32=("first", "last")),
    ],
)
def test_quantisation_settings_give_runnable_int8_models(
    settings: QuantSettings, rows: np.ndarray
) -> None:
    fp32 = export_onnx(mlp(), "compact", D)
    q = quantize_int8(fp32, settings, calibration_ND=rows)
    z = rowwise_logits(q, "compact", rows[:50])
    assert z.shape == (50, A) and np.isfinite(z).all()
    if not settings.keep_fp32:  # (this two-layer student keeps nothing int8 with both kept)
        assert len(q) < len(fp32)


def test_bad_quantisation_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="accepted: dynamic, static"):
        QuantSettings(mode="float16")
    with pytest.raises(ConfigError, match="needs int8 mode 'static'"):
        QuantSettings(keep_fp32=("last",))
    with pytest.raises(ConfigError, match="calibration rows"):
        quantize_int8(export_onnx(mlp(), "compact", D), QuantSettings(mode="static"))
    with pytest.raises(ConfigError, match="closed-loop check"):
        ClosedLoopSpec(seeds=(), requests=10, min_ratio=0.9)


def test_gate_options_map_every_gate_field() -> None:
    cfg = CompileConfig(
        min_agreement=0.9, tie_tol_q=0.01, int8_mode="static", closed_loop_seeds=(7,)
    )
    opts = gate_options(cfg)
    assert opts["min_agreement"] == 0.9 and opts["tie_tol_q"] == 0.01
    assert opts["quant"].mode == "static" and opts["closed_loop"].seeds == (7,)
    assert gate_options(CompileConfig(closed_loop=False))["closed_loop"] is None


@pytest.mark.parametrize(
    "setting",
    ["compile.int8_mode=float16", "compile.min_value_ratio=2", "compile.int8_keep_fp32=[middle]"],
)
def test_bad_compile_settings_are_one_typed_line(
    setting: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ConfigError):
        load_run_config(sets=[setting])
    assert main(["run", "--set", setting, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and setting.split("=")[0] in err
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ library decisions
def write_library(folder: Path, n: int = 120) -> Path:
    spec = LibrarySpec.from_env_config(CFG)
    meta = encode_metadata(
        spec, env_config=CFG, teacher_sha256="0" * 64, seeds=[0], cases=["c"], loads=[1.0]
    )
    rng = np.random.default_rng(0)
    block = {
        "compact": rng.normal(size=(n, D)).astype(np.float32),
        "state": rng.normal(size=(n, spec.state_dim)).astype(np.float32),
        "q_values": rng.normal(size=(n, A)).astype(np.float32),
        "action_mask": (rng.random((n, A)) > 0.3).astype(np.int8),
        "hard": np.zeros((n, A), np.int8),
        "soft": np.zeros((n, A, spec.n_soft), np.float32),
        "action": np.zeros(n, np.int16),
        "greedy": np.ones(n, np.int8),
        "reward": np.zeros(n, np.float32),
        "episode_id": np.zeros(n, np.int64),
        "case": "c",
        "load": np.ones(n, np.float32),
        "seed": np.zeros(n, np.int64),
        "step": np.arange(n),
    }
    folder.mkdir()
    with LibraryWriter(folder / "part-00000.parquet", spec=spec, metadata=meta) as w:
        w.write(block)
    return folder


def test_library_decisions_are_those_of_the_sampled_rows(tmp_path: Path) -> None:
    lib = write_library(tmp_path / "lib")
    x, _ = library_rows(lib, max_rows=50)
    q, mask = library_decisions(lib, x)
    assert q.shape == mask.shape == (50, A)
    from pcnalloc.library.reader import LibraryReader

    full = LibraryReader(lib).read_all(["compact", "q_values"])
    idx = [int(np.flatnonzero((np.asarray(full["compact"]) == r).all(1))[0]) for r in x[:5]]
    assert np.array_equal(q[:5], np.asarray(full["q_values"])[idx])
    with pytest.raises(CompileError, match="not library"):
        library_decisions(lib, x[::-1].copy())
