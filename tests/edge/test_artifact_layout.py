"""The manifest declares the compact-vector layout; the loader refuses any other layout.

Planted faults: a correctly signed manifest whose layout has two candidate columns swapped
(or the blocks reordered), and a running code whose layout changed after compiling, are both
refused with :class:`LayoutMismatchError` naming the first difference. A network shipped in
the artifact is hashed and signed like the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.edge import artifact as art_mod
from pcnalloc.edge import keys
from pcnalloc.edge.artifact import (
    MANIFEST,
    NETWORK_FILE,
    SIGNATURE,
    ArtifactError,
    ArtifactMismatchError,
    LayoutMismatchError,
    load_artifact,
    manifest_bytes,
)
from pcnalloc.envs.layout import CANDIDATE_FEATURES, compact_layout
from pcnalloc.export.compile import compile_student
from pcnalloc.traffic.catalog import load_catalog

CFG = EnvConfig()
CAT = load_catalog(CFG.traffic.catalog, max_levels=CFG.grant_levels)
LAYOUT = compact_layout(CAT.names, CFG.n_actions)
D, A = LAYOUT.size, CFG.n_actions


def _student() -> torch.nn.Sequential:
    g = torch.Generator().manual_seed(3)
    m = torch.nn.Sequential(torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, A))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    m.input_key = "compact"
    return m.eval()


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "layout")


def _compile(out: Path, keypair: tuple[Path, Path], **kw: Any) -> Path:
    rows = np.random.default_rng(0).uniform(-1, 1, size=(64, D)).astype(np.float32)
    compile_student(_student(), rows, env_config=CFG, private_key=keypair[0], out_dir=out, **kw)
    return out


def _swap_candidate_columns(layout: dict[str, Any]) -> dict[str, Any]:
    cand = next(b for b in layout["blocks"] if b["name"] == "candidates")
    c = cand["columns"]
    c[0], c[1] = c[1], c[0]
    return layout


def test_manifest_serialises_the_layout(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    a = load_artifact(_compile(tmp_path / "a", keypair), keypair[1])
    assert a.manifest["input"]["layout"] == LAYOUT.to_dict()
    assert a.manifest["input"]["layout"]["blocks"][1]["columns"] == list(CANDIDATE_FEATURES)
    assert [b["name"] for b in a.manifest["input"]["blocks"]] == [b.name for b in LAYOUT.blocks]


def test_signed_manifest_with_shuffled_layout_is_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    out = _compile(tmp_path / "a", keypair, layout_hook=_swap_candidate_columns)
    with pytest.raises(LayoutMismatchError, match="candidates column 0 is 'hops_div10'") as e:
        load_artifact(out, keypair[1])
    assert isinstance(e.value, ArtifactMismatchError)
    assert e.value.differences


def test_reordered_blocks_and_missing_layout_are_refused(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    out = _compile(tmp_path / "a", keypair)
    priv = keys.load_private_key(keypair[0])
    m = json.loads((out / MANIFEST).read_text())
    b = m["input"]["layout"]["blocks"]
    b[2], b[3] = b[3], b[2]
    raw = manifest_bytes(m)
    (out / MANIFEST).write_bytes(raw)
    (out / SIGNATURE).write_bytes(keys.sign(priv, raw))  # re-signed: only the layout is off
    with pytest.raises(LayoutMismatchError, match="block order"):
        load_artifact(out, keypair[1])
    del m["input"]["layout"]
    raw = manifest_bytes(m)
    (out / MANIFEST).write_bytes(raw)
    (out / SIGNATURE).write_bytes(keys.sign(priv, raw))
    with pytest.raises(LayoutMismatchError, match=r"input\.layout is missing"):
        load_artifact(out, keypair[1])


def test_code_layout_change_refuses_an_old_artifact(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _compile(tmp_path / "a", keypair)
    load_artifact(out, keypair[1])  # accepted by the code it was compiled with

    def changed(names: Any, n_actions: int) -> Any:
        lay = compact_layout(names, n_actions)
        d = _swap_candidate_columns(lay.to_dict())
        blocks = tuple(
            type(b)(b.name, tuple(db["columns"]), b.rows, b.offset)
            for b, db in zip(lay.blocks, d["blocks"], strict=True)
        )
        return type(lay)(blocks)

    monkeypatch.setattr(art_mod, "compact_layout", changed)  # the running code moved a column
    with pytest.raises(LayoutMismatchError, match="latency_over_bound"):
        load_artifact(out, keypair[1])


def test_network_ships_signed(
    tmp_path: Path, keypair: tuple[Path, Path], case_network: Any
) -> None:
    net = case_network("case30")
    out = _compile(tmp_path / "a", keypair, network=net)
    a = load_artifact(out, keypair[1])
    assert a.has_network and a.manifest["network"]["sites"] == net.n_sites
    got = a.network()
    assert got.name == net.name and got.site_names == net.site_names
    for k in ("link_ends", "pool_capacity_kbps", "link_prop_ms", "site_region"):
        np.testing.assert_array_equal(getattr(got, k), getattr(net, k))
    assert sorted(got.graph.edges(data="w")) == sorted(net.graph.edges(data="w"))
    p = out / NETWORK_FILE
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01  # planted: one bit of the network file
    p.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=f"{NETWORK_FILE}: sha256 .* differs"):
        load_artifact(out, keypair[1])
    plain = load_artifact(_compile(tmp_path / "b", keypair), keypair[1])
    with pytest.raises(ArtifactError, match=r"carries no network\.npz"):
        plain.network()
