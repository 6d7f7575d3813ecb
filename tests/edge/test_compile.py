"""Student → ONNX compile: parity, manifest, int8 gate, atomic publish, checkpoint loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.artifact import MANIFEST, compact_blocks, load_artifact
from pcnalloc.envs.observation import compact_dim, layout_for
from pcnalloc.export.compile import (
    CompileError,
    QuantizationRejected,
    compile_student,
    export_onnx,
    load_student_module,
    onnx_logits,
    save_student_checkpoint,
    torch_logits,
)
from pcnalloc.traffic.catalog import load_catalog

CFG = EnvConfig()
CAT = load_catalog(None, max_levels=CFG.grant_levels)
D, A = compact_dim(CAT, CFG), CFG.n_actions


def mlp(seed: int = 0, hidden: int = 64, d: int = D, a: int = A) -> torch.nn.Sequential:
    """A small student of the distilled students' shape: (B, D) float32 → (B, A) logits."""
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, a))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    m.input_key = "compact"
    return m.eval()


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(512, D)).astype(np.float32)


@pytest.fixture(scope="module")
def priv():
    return keys.generate_keypair()[0]


def test_export_is_valid_onnx_with_dynamic_batch_and_parity(rows: np.ndarray) -> None:
    m = mlp()
    data = export_onnx(m, "compact", D, opset=17)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert inp.name == "compact" and out.name == "logits"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == D  # symbolic batch, fixed width
    for n in (1, 7, len(rows)):
        diff = np.abs(onnx_logits(data, "compact", rows[:n]) - torch_logits(m, rows[:n]))
        assert diff.max() <= 1e-5


def test_export_refuses_old_opset_and_unknown_input() -> None:
    with pytest.raises(CompileError, match="opset 13"):
        export_onnx(mlp(), "compact", D, opset=13)
    with pytest.raises(CompileError, match="'obs'"):
        export_onnx(mlp(), "obs", D)


def test_compile_writes_signed_manifest(tmp_path: Path, rows: np.ndarray, priv) -> None:
    res = compile_student(mlp(), rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a")
    assert res.parity_max_abs <= 1e-5
    m = json.loads((tmp_path / "a" / MANIFEST).read_text())
    assert m["input"] == {
        "name": "compact",
        "dim": D,
        "dtype": "float32",
        "shape": ["batch", D],
        "blocks": compact_blocks(CAT, CFG),
        "layout": layout_for(CAT, CFG).to_dict(),
    }
    assert [b["name"] for b in m["input"]["blocks"]] == [
        "request",
        "candidates",
        "history_stats",
        "network_stats",
    ]
    assert sum(b["size"] for b in m["input"]["blocks"]) == D
    assert m["output"]["name"] == "logits" and m["n_actions"] == A
    assert m["catalog"] == list(CAT.names)
    assert set(m["versions"]) >= {"torch", "onnx", "onnxruntime", "pcnalloc"}
    assert len(m["env_config_sha256"]) == 64 and m["created_at"].endswith("+00:00")
    fp32 = (tmp_path / "a" / "model.onnx").read_bytes()
    import hashlib

    assert m["models"]["fp32"]["sha256"] == hashlib.sha256(fp32).hexdigest()
    assert m["signature"]["key_id"] == keys.key_id(priv.public_key())
    art = load_artifact(tmp_path / "a", priv.public_key())
    assert art.models["fp32"] == fp32 and "int8" not in art.models


def test_int8_accepted_when_it_agrees(tmp_path: Path, rows: np.ndarray, priv) -> None:
    m = mlp()
    with torch.no_grad():  # clear preferences (as a trained student has): margins ≫ int8 step
        m[2].weight.mul_(0.1)
        m[2].bias.copy_(torch.arange(A, dtype=torch.float32) * 0.5)
    res = compile_student(
        m, rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a", int8=True
    )
    assert res.int8_agreement is not None and res.int8_agreement >= 0.995
    assert res.model_bytes["int8"] < res.model_bytes["fp32"]
    art = load_artifact(tmp_path / "a", priv.public_key())
    assert art.manifest["validation"]["int8_argmax_agreement"] == res.int8_agreement
    assert "int8" in art.models


def _break_last_bias(q: bytes) -> bytes:
    """Overwrite the output layer's bias with large random values (a broken quantisation)."""
    model = onnx.load_from_string(q)
    biases = [t for t in model.graph.initializer if numpy_helper.to_array(t).shape == (A,)]
    assert biases, "the quantised graph keeps the output bias as an initializer"
    rng = np.random.default_rng(1)
    for t in biases:
        t.CopyFrom(numpy_helper.from_array(rng.normal(0, 50, A).astype(np.float32), t.name))
    return model.SerializeToString()


def test_int8_gate_refuses_a_broken_quantisation(tmp_path: Path, rows: np.ndarray, priv) -> None:
    out = tmp_path / "a"
    with pytest.raises(QuantizationRejected, match=r"agreement with fp32 is \d+\.\d+%") as ei:
        compile_student(
            mlp(),
            rows,
            env_config=CFG,
            private_key=priv,
            out_dir=out,
            int8=True,
            int8_hook=_break_last_bias,
        )
    assert ei.value.agreement < 0.995 and ei.value.rows == len(rows)
    assert not out.exists()  # nothing published
    assert not list(tmp_path.iterdir())  # and no temp folder left behind


def test_int8_gate_refuses_near_tied_logits(tmp_path: Path, priv) -> None:
    """A model whose logits differ by less than the int8 step flips argmaxes when quantised."""
    m = mlp(seed=3, hidden=16)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # nearly identical output rows: margins below the int8 weight step
        w0 = torch.randn(1, 16, generator=g)
        m[2].weight.copy_(w0 + 1e-3 * torch.randn(A, 16, generator=g))
        m[2].bias.zero_()
    rows = np.random.default_rng(2).normal(size=(400, D)).astype(np.float32) * 3
    with pytest.raises(QuantizationRejected) as ei:
        compile_student(
            m, rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a", int8=True
        )
    assert ei.value.agreement < 0.995


def test_compile_refuses_wrong_shapes_and_existing_folder(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    with pytest.raises(CompileError, match="D=20"):
        compile_student(
            mlp(d=20), rows[:, :20], env_config=CFG, private_key=priv, out_dir=tmp_path / "x"
        )
    with pytest.raises(CompileError, match=r"expected \(B, 13\)"):
        compile_student(mlp(a=5), rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "x")
    out = tmp_path / "a"
    compile_student(mlp(0), rows, env_config=CFG, private_key=priv, out_dir=out)
    first = (out / "model.onnx").read_bytes()
    with pytest.raises(CompileError, match="exists"):
        compile_student(mlp(1), rows, env_config=CFG, private_key=priv, out_dir=out)
    compile_student(mlp(1), rows, env_config=CFG, private_key=priv, out_dir=out, overwrite=True)
    assert (out / "model.onnx").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no temp or old folders


def test_parity_gate_refuses_a_mismatch(tmp_path: Path, rows: np.ndarray, priv) -> None:
    """A module whose eval-time output differs from its traced graph fails the parity gate."""

    class Drifting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            drift = 0.0 if torch.onnx.is_in_onnx_export() else 1e-3  # eager ≠ exported graph
            return self.net(x) + drift

    with pytest.raises(CompileError, match="parity failed"):
        compile_student(Drifting(), rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a")


def test_student_checkpoint_roundtrip(tmp_path: Path, rows: np.ndarray) -> None:
    m = mlp(5)
    p = save_student_checkpoint(m, tmp_path / "student.pt")
    back = load_student_module(p)
    assert back.input_key == "compact"
    np.testing.assert_array_equal(torch_logits(back, rows[:32]), torch_logits(m, rows[:32]))
    with pytest.raises(CompileError, match="does not exist"):
        load_student_module(tmp_path / "missing.pt")
    torch.save({"nothing": 1}, tmp_path / "bad.pt")
    with pytest.raises(CompileError, match="no state_dict"):
        load_student_module(tmp_path / "bad.pt")


def test_distilled_student_compiles_with_its_standardisation(
    tmp_path: Path, rows: np.ndarray, priv
) -> None:
    from pcnalloc.distill import make_student, save_student

    s = make_student("edge", input_dim=D, n_actions=A, generator=torch.Generator().manual_seed(0))
    s.set_standardisation(torch.full((D,), 0.3), torch.full((D,), 2.0))
    save_student(tmp_path / "student.pt", s)
    back = load_student_module(tmp_path)  # the distill output folder
    assert back.input_key == "compact" and back.param_bytes <= 125_000
    res = compile_student(back, rows, env_config=CFG, private_key=priv, out_dir=tmp_path / "a")
    assert res.parity_max_abs <= 1e-5
    assert res.manifest["student"]["param_count"] == s.param_count
    got = onnx_logits(
        load_artifact(tmp_path / "a", priv.public_key()).models["fp32"], "compact", rows
    )
    np.testing.assert_allclose(got, torch_logits(s, rows), atol=1e-5)
