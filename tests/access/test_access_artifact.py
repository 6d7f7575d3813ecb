"""Signed ONNX artifact of the access student: compile gates, verification with a pinned key
(tampered model, tampered manifest, wrong key), ONNX Runtime policy without torch, the same
decisions as the torch student on the same seeds, and bad input through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.access import access_config, make_access_policy, run_access
from pcnalloc.cli import main
from pcnalloc.edge.artifact import ArtifactError, ArtifactMismatchError

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=2, slots_per_epoch=3)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from pcnalloc.edge.keys import save_keypair
    from pcnalloc.twolayer.export import compile_access_student
    from pcnalloc.twolayer.teacher import AccessTeacherConfig
    from pcnalloc.twolayer.train import train_pipeline

    root = tmp_path_factory.mktemp("access_artifact")
    train_pipeline(
        root / "run",
        access_config(SMALL),
        AccessTeacherConfig(episodes=4, warmup=20, batch_size=32, hidden=(16,)),
        library_episodes=4,
        distill={"epochs": 3, "patience": 2, "hidden": (8,)},
    )
    key, pub = save_keypair(root / "keys")
    _other_key, other_pub = save_keypair(root / "other")
    compile_access_student(
        root / "run", root / "run" / "library", private_key=key, out_dir=root / "art"
    )
    return {
        "root": root,
        "run": root / "run",
        "key": key,
        "pub": pub,
        "other_pub": other_pub,
        "art": root / "art",
    }


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_manifest_records_layout_hash_and_parity(kit: dict[str, Path]) -> None:
    from pcnalloc.access.features import FEATURES
    from pcnalloc.edge.artifact import sha256_bytes
    from pcnalloc.twolayer.artifact import ACCESS_FORMAT, load_access_artifact

    art = load_access_artifact(kit["art"], kit["pub"])
    m = art.manifest
    assert m["format"] == ACCESS_FORMAT and m["input"]["features"] == list(FEATURES)
    assert m["output"]["actions"] == ["plc", "5g"]
    assert m["models"]["fp32"]["sha256"] == sha256_bytes((kit["art"] / "model.onnx").read_bytes())
    v = m["validation"]
    assert v["rows"] == v["library_rows"] == 4 * 2 * 12  # every library row
    assert v["parity_max_abs"] <= v["parity_tol"] * v["parity_logit_scale"]
    assert v["argmax_agreement_clear_margin"] == 1.0 and v["argmax_agreement"] >= 0.99
    assert m["access_config"]["devices"] == 12


def test_artifact_policy_takes_the_torch_students_decisions(kit: dict[str, Path]) -> None:
    from pcnalloc.twolayer.compare import compare

    cfg = access_config(SMALL)
    edge = f"edge@{kit['art']}::{kit['pub']}"
    torch_spec = f"learned@{kit['run']}"

    def decisions(spec: str, seed: int) -> tuple[list[np.ndarray], dict]:
        seen: list[np.ndarray] = []
        r = run_access(
            make_access_policy(spec),
            cfg,
            seed=seed,
            on_slot=lambda m, _v, holder, _r: seen.extend([m.modes.copy(), holder.copy()]),
        )
        return seen, r["metrics"]

    for seed in (0, 1, 2):
        a, ma = decisions(edge, seed)
        b, mb = decisions(torch_spec, seed)
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert ma == mb
    res = compare([edge, torch_spec, "matching"], cfg, [0, 1])
    assert res["policies"][edge]["name"] == "student-onnx"
    assert res["policies"][edge]["mode_us_p50"] is not None
    row = next(r for r in res["paired"] if r["learned"] == edge and r["against"] == torch_spec)
    assert row["weighted_sum"]["mean_diff"] == 0.0
    # planted fault: a model that is not the student's decides otherwise, and it shows
    from pcnalloc.twolayer.artifact import ArtifactModePolicy

    pol = make_access_policy(edge)
    assert isinstance(pol, ArtifactModePolicy)
    pol.scores = lambda x: -ArtifactModePolicy.scores(pol, x)  # type: ignore[method-assign]
    assert run_access(pol, cfg, seed=0)["metrics"] != decisions(torch_spec, 0)[1]


def test_artifact_policy_runs_without_torch(kit: dict[str, Path]) -> None:
    edge = f"edge@{kit['art']}::{kit['pub']}"
    code = (
        "import sys\n"
        "from pcnalloc.access import access_config, make_access_policy, run_access\n"
        f"cfg = access_config({SMALL!r})\n"
        f"r = run_access(make_access_policy({edge!r}), cfg, seed=0)\n"
        "assert r['policy'] == 'student-onnx'\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr
    # the check can fail: the torch student's spec imports torch (built, not played)
    learned = f"learned@{kit['run']}"
    code2 = (
        "import sys\n"
        "from pcnalloc.access import make_access_policy\n"
        f"make_access_policy({learned!r})\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_tampered_or_foreign_artifacts_are_refused(
    kit: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pcnalloc.twolayer.artifact import load_access_artifact

    model = _copy(kit["art"], tmp_path / "model")
    raw = bytearray((model / "model.onnx").read_bytes())
    raw[-5] ^= 0x01
    (model / "model.onnx").write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="tampered"):
        load_access_artifact(model, kit["pub"])

    man = _copy(kit["art"], tmp_path / "manifest")
    m = json.loads((man / "manifest.json").read_text())
    m["created_at"] = "2020-01-01T00:00:00+00:00"
    (man / "manifest.json").write_text(json.dumps(m, indent=2, sort_keys=True) + "\n")
    with pytest.raises(ArtifactError, match="changed after signing"):
        load_access_artifact(man, kit["pub"])

    with pytest.raises(ArtifactError, match="wrong key"):
        load_access_artifact(kit["art"], kit["other_pub"])

    # the artifact's own signer.pub is never trusted: the spec needs the pinned key
    with pytest.raises(Exception, match="PUBLIC_KEY"):
        make_access_policy(f"edge@{kit['art']}")

    for spec in (
        f"edge@{model}::{kit['pub']}",
        f"edge@{man}::{kit['pub']}",
        f"edge@{kit['art']}::{kit['other_pub']}",
        f"edge@{kit['art']}",
        f"edge@{tmp_path / 'nope'}::{kit['pub']}",
    ):
        assert main(["access", "compare", "--policies", f"{spec},matching", "--seeds", "2"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err


def test_feature_layout_mismatch_is_refused(kit: dict[str, Path]) -> None:
    from pcnalloc.twolayer.artifact import check_features

    m = json.loads((kit["art"] / "manifest.json").read_text())
    check_features(m)
    bad = json.loads(json.dumps(m))
    bad["input"]["features"][3] = "something_else"
    with pytest.raises(ArtifactMismatchError, match="feature 3"):
        check_features(bad)
    short = json.loads(json.dumps(m))
    short["input"]["features"] = short["input"]["features"][:-1]
    with pytest.raises(ArtifactMismatchError, match=r"input\.dim"):
        check_features(short)


def test_parity_gate_catches_a_planted_fault(kit: dict[str, Path], tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from pcnalloc.access.errors import AccessConfigError
    from pcnalloc.twolayer.export import compile_access_student

    def nudge(model: bytes) -> bytes:
        g = onnx.load_from_string(model)
        init = g.graph.initializer[-1]  # the last bias: every logit moves
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 1e-2, init.name))
        return g.SerializeToString()

    out = tmp_path / "bad"
    with pytest.raises(AccessConfigError, match="parity failed"):
        compile_access_student(
            kit["run"], kit["run"] / "library", private_key=kit["key"], out_dir=out,
            onnx_hook=nudge,
        )  # fmt: skip
    assert not out.exists() and not list(tmp_path.iterdir())  # no partial folder


def test_compile_cli_and_bad_input(
    kit: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "art"
    args = ["access", "compile", "--learned", str(kit["run"]), "--key", str(kit["key"])]
    assert main([*args, "--out", str(out), "--rows", "50"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["validation"]["rows"] == 50
    before = (out / "manifest.json").read_bytes()
    # an existing --out without --overwrite: one line, exit 2, nothing touched
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--overwrite" in err and "\n" not in err
    assert (out / "manifest.json").read_bytes() == before
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    capsys.readouterr()
    bad = [
        ["access", "compile", "--learned", str(tmp_path / "nope"), "--key", str(kit["key"])],
        ["access", "compile", "--learned", str(kit["run"]), "--key", str(tmp_path / "no.key")],
        [
            "access",
            "compile",
            "--learned",
            str(kit["run"]),
            "--key",
            str(kit["key"]),
            "--library",
            str(tmp_path),
        ],
    ]
    for argv in bad:
        assert main([*argv, "--out", str(tmp_path / "x")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err, err
        assert not (tmp_path / "x").exists()


def test_backbone_verifier_names_the_other_format(kit: dict[str, Path]) -> None:
    from pcnalloc.edge.artifact import load_artifact

    with pytest.raises(ArtifactError, match=r"pcnalloc-access-artifact/1.*not accepted"):
        load_artifact(kit["art"], kit["pub"])


def test_a_library_of_another_layer_is_refused(kit: dict[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from pcnalloc.access.errors import AccessConfigError
    from pcnalloc.library.schema import METADATA_KEY
    from pcnalloc.twolayer.export import compile_access_student

    lib = tmp_path / "lib"
    lib.mkdir()
    for part in sorted((kit["run"] / "library").glob("*.parquet")):
        t = pq.read_table(part)
        meta = dict(t.schema.metadata)
        m = json.loads(meta[METADATA_KEY])
        m["extra"].pop("layer")  # planted: a backbone library's metadata has no access layer
        meta[METADATA_KEY] = json.dumps(m).encode()
        pq.write_table(t.replace_schema_metadata(meta), lib / part.name)
    out = tmp_path / "art"
    with pytest.raises(AccessConfigError, match="not an access library"):
        compile_access_student(kit["run"], lib, private_key=kit["key"], out_dir=out)
    assert not out.exists()
