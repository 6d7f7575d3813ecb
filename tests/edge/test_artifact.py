"""Signed artifacts: the loader and ``pcnalloc artifact verify`` refuse every tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.cli import main
from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.artifact import (
    MANIFEST,
    SIGNATURE,
    ArtifactError,
    ArtifactMismatchError,
    check_feature_config,
    load_artifact,
    manifest_bytes,
)
from pcnalloc.export.compile import compile_student, save_student_checkpoint
from pcnalloc.library.schema import LibrarySpec, encode_metadata
from pcnalloc.library.writer import LibraryWriter
from pcnalloc.traffic.catalog import load_catalog

CFG = EnvConfig()
SPEC = LibrarySpec.from_env_config(CFG)
D, A = SPEC.compact_dim, SPEC.n_actions


def student(seed: int = 0) -> torch.nn.Sequential:
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(torch.nn.Linear(D, 32), torch.nn.ReLU(), torch.nn.Linear(32, A))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        m[2].weight.mul_(0.1)
        m[2].bias.copy_(torch.arange(A, dtype=torch.float32) * 0.5)  # int8-safe margins
    m.input_key = "compact"
    return m.eval()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "signer")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, Path]) -> Path:
    rows = np.random.default_rng(0).uniform(-1, 1, size=(256, D)).astype(np.float32)
    out = tmp_path_factory.mktemp("art") / "artifact"
    compile_student(student(), rows, env_config=CFG, private_key=keypair[0], out_dir=out, int8=True)
    return out


@pytest.fixture
def art(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of the pristine artifact to tamper with."""
    return Path(shutil.copytree(pristine, tmp_path / "artifact"))


def test_pristine_artifact_verifies(art: Path, keypair: tuple[Path, Path]) -> None:
    a = load_artifact(art, keypair[1])
    assert set(a.models) == {"fp32", "int8"}
    assert a.key_id == keys.key_id(keys.load_public_key(keypair[1]))
    assert a.input_name == "compact" and a.input_dim == D and a.n_actions == A


@pytest.mark.parametrize("fname", ["model.onnx", "model.int8.onnx"])
def test_tampered_model_byte_is_refused(art: Path, keypair: tuple[Path, Path], fname: str) -> None:
    p = art / fname
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit in the middle of the weights
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=rf"{fname}: sha256 .* differs .*tampered"):
        load_artifact(art, keypair[1])


def test_truncated_or_grown_model_is_refused(art: Path, keypair: tuple[Path, Path]) -> None:
    p = art / "model.onnx"
    p.write_bytes(p.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match=r"model.onnx: \d+ bytes, the manifest records"):
        load_artifact(art, keypair[1])


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_actions", A + 1), ("input", {"name": "compact", "dim": D + 1}), ("catalog", ["x"])],
)
def test_edited_manifest_field_is_refused(
    art: Path, keypair: tuple[Path, Path], field: str, value: object
) -> None:
    m = json.loads((art / MANIFEST).read_text())
    m[field] = value
    (art / MANIFEST).write_bytes(manifest_bytes(m))
    with pytest.raises(ArtifactError, match=rf"{SIGNATURE}: signature over {MANIFEST}"):
        load_artifact(art, keypair[1])


def test_edited_model_hash_in_manifest_is_refused(art: Path, keypair: tuple[Path, Path]) -> None:
    """Swapping a model and updating its hash still breaks the signature."""
    m = json.loads((art / MANIFEST).read_text())
    m["models"]["fp32"]["sha256"] = "0" * 64
    (art / MANIFEST).write_bytes(manifest_bytes(m))
    with pytest.raises(ArtifactError, match="does not verify"):
        load_artifact(art, keypair[1])


def test_whitespace_edit_of_manifest_is_refused(art: Path, keypair: tuple[Path, Path]) -> None:
    p = art / MANIFEST
    p.write_bytes(p.read_bytes() + b"\n")
    with pytest.raises(ArtifactError, match="does not verify"):
        load_artifact(art, keypair[1])


def test_tampered_signature_is_refused(art: Path, keypair: tuple[Path, Path]) -> None:
    sig = bytearray((art / SIGNATURE).read_bytes())
    sig[0] ^= 0x80
    (art / SIGNATURE).write_bytes(bytes(sig))
    with pytest.raises(ArtifactError, match=SIGNATURE):
        load_artifact(art, keypair[1])


def test_wrong_key_and_resigned_manifest_are_refused(art: Path, keypair: tuple[Path, Path]) -> None:
    other_priv, other_pub = keys.generate_keypair()
    with pytest.raises(ArtifactError, match="wrong key"):
        load_artifact(art, other_pub)
    # a forger edits the manifest and re-signs it with their own key
    m = json.loads((art / MANIFEST).read_text())
    m["n_actions"] = 99
    m["signature"]["key_id"] = keys.key_id(other_pub)
    raw = manifest_bytes(m)
    (art / MANIFEST).write_bytes(raw)
    (art / SIGNATURE).write_bytes(keys.sign(other_priv, raw))
    with pytest.raises(ArtifactError, match=r"signed by key \w+, not by the given key"):
        load_artifact(art, keypair[1])


@pytest.mark.parametrize("fname", [MANIFEST, SIGNATURE, "model.onnx", "model.int8.onnx"])
def test_missing_file_is_refused(art: Path, keypair: tuple[Path, Path], fname: str) -> None:
    (art / fname).unlink()
    with pytest.raises(ArtifactError, match=rf"{fname}: missing"):
        load_artifact(art, keypair[1])


def test_missing_folder_and_bad_key_file(tmp_path: Path, art: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist"):
        load_artifact(tmp_path / "nowhere", None)
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(ArtifactError, match="public key"):
        load_artifact(art, tmp_path / "bad.pub")


def test_feature_config_mismatch_names_the_field(art: Path, keypair: tuple[Path, Path]) -> None:
    a = load_artifact(art, keypair[1])
    cfg = EnvConfig(k_paths=3, history=8)
    with pytest.raises(ArtifactMismatchError, match=r"history: artifact 16, deployment 8"):
        check_feature_config(a.manifest, cfg, load_catalog(None, max_levels=cfg.grant_levels))
    check_feature_config(a.manifest, CFG, load_catalog(None, max_levels=3))  # agrees


# ---------------------------------------------------------------------------- CLI
def _library(folder: Path, n: int = 300) -> Path:
    rng = np.random.default_rng(1)
    block = {
        "compact": rng.uniform(-1, 1, (n, D)).astype(np.float32),
        "state": rng.normal(size=(n, SPEC.state_dim)).astype(np.float32),
        "q_values": rng.normal(size=(n, A)).astype(np.float32),
        "action_mask": np.ones((n, A), np.int8),
        "hard": np.zeros((n, A), np.int8),
        "soft": np.zeros((n, A, SPEC.n_soft), np.float32),
        "action": np.zeros(n, np.int16),
        "greedy": np.ones(n, np.int8),
        "reward": np.zeros(n, np.float32),
        "episode_id": np.zeros(n, np.int64),
        "case": "case30",
        "load": np.ones(n, np.float32),
        "seed": np.zeros(n, np.int64),
        "step": np.arange(n, dtype=np.int32),
    }
    meta = encode_metadata(
        SPEC, env_config=CFG, teacher_sha256="t", seeds=[0], cases=["case30"], loads=[1.0]
    )
    with LibraryWriter(folder / "part-00000.parquet", spec=SPEC, metadata=meta) as w:
        w.write(block)
    return folder


def test_cli_compile_and_verify(
    tmp_path: Path, keypair: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lib = _library(tmp_path / "lib")
    ckpt = save_student_checkpoint(student(), tmp_path / "student.pt")
    out = tmp_path / "artifact"
    args = ["compile", "--student", str(ckpt), "--library", str(lib)]
    args += ["--key", str(keypair[0]), "--out", str(out), "--int8"]
    assert main(args) == 0
    m = json.loads((out / MANIFEST).read_text())
    assert m["validation"]["rows"] == 300 and m["source"]["library"] == str(lib)
    assert main(["artifact", "verify", str(out), "--public-key", str(keypair[1])]) == 0
    assert "OK" in capsys.readouterr().out
    data = bytearray((out / "model.onnx").read_bytes())
    data[-10] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["artifact", "verify", str(out), "--public-key", str(keypair[1])]) == 1
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip()]
    assert len(lines) == 1 and "FAIL" in lines[0] and "model.onnx" in lines[0]


def test_cli_verify_wrong_key_and_missing_folder(
    art: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, other = keys.save_keypair(tmp_path / "k", "other")
    assert main(["artifact", "verify", str(art), "--public-key", str(other)]) == 1
    assert "wrong key" in capsys.readouterr().out
    assert main(["artifact", "verify", str(art)]) == 0  # signer.pub inside: integrity only
    assert "integrity only" in capsys.readouterr().out
    assert main(["artifact", "verify", str(tmp_path / "none")]) == 1
