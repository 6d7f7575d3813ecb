"""On-disk network cache: same network back, keyed by case/config/code, never trusted blindly."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pcnalloc.config import NetworkConfig
from pcnalloc.network import store
from pcnalloc.network.builder import build_network


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PCNALLOC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _same(a, b) -> None:
    for k in store._ARRAYS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k), err_msg=k)
    assert a.site_names == b.site_names and a.site_buses == b.site_buses
    assert a.control_centers == b.control_centers and a.config == b.config
    assert sorted(a.graph.edges(data=True)) == sorted(b.graph.edges(data=True))


def test_stored_network_equals_the_built_one(folder) -> None:
    calls = []

    def build(case, cfg):
        calls.append(case)
        return build_network(case, cfg)

    cfg = NetworkConfig()
    first = store.load_or_build("case14", cfg, build)
    again = store.load_or_build("case14", cfg, build)
    assert calls == ["case14"], "the second call is served from disk"
    _same(first, again)
    assert len(list(folder.glob("*.npz"))) == 1 and not list(folder.glob(".*tmp"))


def test_key_changes_with_config_case_and_code(folder, monkeypatch) -> None:
    cfg = NetworkConfig()
    k = store.network_key("case14", cfg)
    assert k == store.network_key("case14", NetworkConfig())
    assert k != store.network_key("case14", NetworkConfig(queue_q0_ms=0.2))
    assert k != store.network_key("case30", cfg)
    monkeypatch.setattr(store, "_code_hash", lambda: "changed")
    assert k != store.network_key("case14", cfg)


def test_unreadable_cache_file_is_rebuilt(folder) -> None:
    cfg = NetworkConfig()
    store.load_or_build("case14", cfg, build_network)
    (path,) = folder.glob("*.npz")
    path.write_bytes(b"garbage")
    net = store.load_or_build("case14", cfg, build_network)
    _same(net, build_network("case14", cfg))


def test_cache_can_be_switched_off(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PCNALLOC_CACHE_DIR", "off")
    assert store.cache_dir() is None


def test_cached_network_needs_no_pandapower(folder) -> None:
    store.load_or_build("case14", NetworkConfig(), build_network)
    code = (
        "import sys\n"
        "from pcnalloc.config import NetworkConfig\n"
        "from pcnalloc.network import cached_network\n"
        "net = cached_network('case14', NetworkConfig())\n"
        "print(net.n_sites, 'pandapower' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout.split()
    assert out == [str(build_network("case14", NetworkConfig()).n_sites), "False"]
