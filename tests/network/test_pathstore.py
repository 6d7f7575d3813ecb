"""Stored path sets: equal to computed ones, keyed by what they depend on, never trusted blindly."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from pcnalloc.config import NetworkConfig
from pcnalloc.network import CommNetwork, cached_network, pathstore
from pcnalloc.network import paths as paths_mod
from pcnalloc.network.paths import PathCache, shared_path_cache

KS = (4, 6)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("PCNALLOC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "paths"


@pytest.fixture(scope="module")
def net14() -> CommNetwork:
    return cached_network("case14", NetworkConfig())


def _fill(cache: PathCache) -> None:
    """Every ordered pair's plain paths and every pair's protected sets for each K."""
    net = cache.net
    failed = np.zeros(net.n_links + 1, dtype=bool)
    for s in range(net.n_sites):
        for t in range(net.n_sites):
            cache.paths(s, t)
            for k in KS:
                cache.candidates(s, t, k, protected=True, failed_E1=failed, failed_key=())


def _assert_same_arrays(a, b, fields) -> None:
    for f in fields:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape, f
        np.testing.assert_array_equal(x, y, err_msg=f)


def _no_search(*_a, **_k):
    raise AssertionError("a stored set was searched again")


def test_loaded_sets_equal_computed_ones_for_every_pair(folder, net14, monkeypatch) -> None:
    computed = PathCache(net14, 6, store=folder)
    _fill(computed)
    assert computed.dirty and computed.flush() and not computed.dirty
    assert not computed.flush(), "nothing new: no second write"
    assert len(list(folder.glob("*.npz"))) == 1 and not list(folder.glob(".*"))
    n = net14.n_sites
    assert len(computed._plain) == n * n and len(computed._prot0) == len(KS) * n * (n + 1) // 2

    monkeypatch.setattr(paths_mod, "_k_shortest", _no_search)
    monkeypatch.setattr(paths_mod, "_tree_k_shortest", _no_search)
    monkeypatch.setattr(paths_mod, "disjoint_pair", _no_search)
    loaded = PathCache(net14, 6, store=folder)
    _fill(loaded)  # all served from the file
    assert not loaded.dirty
    assert loaded._plain.keys() == computed._plain.keys()
    for pair, ps in computed._plain.items():
        _assert_same_arrays(ps, loaded._plain[pair], pathstore.PLAIN_FIELDS)
    assert loaded._prot0.keys() == computed._prot0.keys()
    for kp, cs in computed._prot0.items():
        got = loaded._prot0[kp]
        _assert_same_arrays(cs, got, pathstore.SET_FIELDS)
        assert got.sentinel == cs.sentinel
        for k in range(cs.present_K.size):
            for x, y in zip(cs.route(k), got.route(k), strict=True):
                np.testing.assert_array_equal(x, y)


def test_a_config_change_misses_the_old_file(folder, net14, monkeypatch) -> None:
    base = PathCache(net14, 6, store=folder)
    _fill(base)
    base.flush()
    slower = cached_network("case14", NetworkConfig(switching_delay_ms=0.2))
    assert pathstore.path_key(slower, 6) != pathstore.path_key(net14, 6)
    assert pathstore.path_key(net14, 8) != pathstore.path_key(net14, 6)
    assert pathstore.path_key(net14, 6) == pathstore.path_key(
        cached_network("case14", NetworkConfig()), 6
    )
    # planted: the new switching delay reads its own file, so its latencies are its own
    other = PathCache(slower, 6, store=folder)
    assert not other._plain and not other._prot0
    ps = other.paths(0, 3)
    assert not np.array_equal(ps.prop_ms_P, base._plain[(0, 3)].prop_ms_P)
    assert not PathCache(net14, 8, store=folder)._plain, "path_cache 8 is another file"
    monkeypatch.setattr(pathstore, "_code_hash", lambda: "changed")
    assert pathstore.path_key(net14, 6) != base._key


@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "out_of_range"])
def test_an_unreadable_file_is_ignored_once_and_replaced(
    folder, net14, caplog, damage: str
) -> None:
    first = PathCache(net14, 6, store=folder)
    _fill(first)
    first.flush()
    (path,) = folder.glob("*.npz")
    raw = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"garbage")
    elif damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flipped":  # inside a stored array: the zip CRC catches it
        i = raw.index(b"plain/prop_ms_P.npy") + 400
        path.write_bytes(raw[:i] + bytes([raw[i] ^ 0xFF]) + raw[i + 1 :])
    else:  # a well-formed file whose link indices point past the network
        plain = {(0, 3): tuple(getattr(first.paths(0, 3), f) for f in pathstore.PLAIN_FIELDS)}
        bad = list(plain[(0, 3)])
        bad[0] = bad[0] + net14.n_links + 5
        path.write_bytes(pathstore.encode(first._key, {(0, 3): tuple(bad)}, {}))
    with caplog.at_level(logging.WARNING, logger="pcnalloc.network.paths"):
        again = PathCache(net14, 6, store=folder)
        assert not again._plain and not again._prot0
        _fill(again)
        assert again.flush()
    warnings = [r for r in caplog.records if "unreadable path cache" in r.getMessage()]
    assert len(warnings) == 1
    for pair, ps in first._plain.items():
        _assert_same_arrays(ps, again._plain[pair], pathstore.PLAIN_FIELDS)
    healed = PathCache(net14, 6, store=folder)
    assert healed._plain.keys() == first._plain.keys(), "the next write replaced the bad file"


def test_writers_merge_their_pairs(folder, net14) -> None:
    a = PathCache(net14, 6, store=folder)
    b = PathCache(net14, 6, store=folder)
    a.paths(0, 1)
    b.paths(2, 3)
    assert a.flush() and b.flush()
    both = PathCache(net14, 6, store=folder)
    assert set(both._plain) == {(0, 1), (2, 3)}


def test_concurrent_writers_take_turns(folder, net14, monkeypatch) -> None:
    """Two writers whose read-merge-write overlap (reads slowed down) keep both pairs; with
    the lock planted away, the later rename drops the earlier writer's pair."""
    read = pathstore.read
    gate: list[threading.Barrier] = []

    def slow_read(*a, **k):
        # hold each reader until the other one also reads (at most 1 s): without the lock
        # both read before either writes, deterministically; with it the second reader
        # only comes after the first wrote, so the first one's wait times out
        try:
            gate[0].wait(timeout=1.0)
        except threading.BrokenBarrierError:
            pass
        return read(*a, **k)

    def race() -> set:
        gate[:] = [threading.Barrier(2)]
        for p in folder.glob("*.npz"):
            p.unlink()
        a = PathCache(net14, 6, store=folder)
        b = PathCache(net14, 6, store=folder)
        a.paths(0, 1)
        b.paths(2, 3)
        first = PathCache(net14, 6, store=folder)
        first.paths(4, 5)
        first.flush()  # a file exists, so both racers read (slowly) before writing
        monkeypatch.setattr(pathstore, "read", slow_read)
        threads = [threading.Thread(target=c.flush) for c in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        monkeypatch.setattr(pathstore, "read", read)
        return set(PathCache(net14, 6, store=folder)._plain)

    assert race() == {(0, 1), (2, 3), (4, 5)}
    monkeypatch.setattr(pathstore, "locked", lambda _p: contextlib.nullcontext())
    assert race() != {(0, 1), (2, 3), (4, 5)}, "planted: without the lock a writer loses"


def test_the_file_is_bounded_and_not_rewritten_for_nothing(folder, net14, monkeypatch) -> None:
    monkeypatch.setattr(pathstore, "MAX_STORED_SETS", 5)
    first = PathCache(net14, 6, store=folder)
    for t in range(1, 4):
        first.paths(0, t)
    assert first.flush()
    again = PathCache(net14, 6, store=folder)
    again.paths(0, 1)  # loaded: nothing new
    assert not again.dirty and not again.flush()
    other = PathCache(net14, 6, store=folder)
    other._plain.clear()
    other.paths(0, 1)  # searched again, but the file has it: no write
    assert other.dirty and not other.flush() and not other.dirty
    big = PathCache(net14, 6, store=folder)
    for t in range(4, 9):
        big.paths(0, t)
    assert big.flush()
    assert len(PathCache(net14, 6, store=folder)._plain) == 5, "capped at MAX_STORED_SETS"
    full = PathCache(net14, 6, store=folder)
    full.paths(1, 2)
    assert not full.flush(), "a full file is not rewritten"


def test_flush_at_reset_is_throttled(folder, net14, monkeypatch) -> None:
    cache = PathCache(net14, 6, store=folder)
    cache.paths(0, 1)
    assert not cache.maybe_flush(), "too soon after the cache was made"
    monkeypatch.setattr(paths_mod, "FLUSH_INTERVAL_S", 0.0)
    assert cache.maybe_flush() and not cache.maybe_flush()


def test_switched_off_keeps_everything_in_memory(tmp_path, monkeypatch, net14) -> None:
    monkeypatch.setenv("PCNALLOC_CACHE_DIR", "off")
    assert pathstore.store_dir() is None
    monkeypatch.setattr(paths_mod, "_SHARED", {})
    cache = shared_path_cache(net14, 6)
    cache.paths(0, 1)
    assert cache._store_path is None and not cache.flush()


def test_a_fresh_process_writes_at_exit_and_the_next_one_loads(tmp_path) -> None:
    code = (
        "import sys\n"
        "from pcnalloc.config import NetworkConfig\n"
        "from pcnalloc.network import cached_network\n"
        "from pcnalloc.network import paths\n"
        "net = cached_network('case14', NetworkConfig())\n"
        "c = paths.shared_path_cache(net, 6)\n"
        "print(len(c._plain))\n"
        "c.paths(0, 3)\n"
    )
    env = {**os.environ, "PCNALLOC_CACHE_DIR": str(tmp_path / "cache")}
    run = [sys.executable, "-c", code]
    out1 = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    out2 = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert out1.stdout.split() == ["0"] and out2.stdout.split() == ["1"]
    assert len(list((tmp_path / "cache" / "paths").glob("*.npz"))) == 1
