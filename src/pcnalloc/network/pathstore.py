"""On-disk store of the path sets a :class:`~pcnalloc.network.paths.PathCache` finds on the
intact topology, shared by every process and command on the machine.

Yen's K shortest paths cost ~1.9 ms per site pair on case1354pegase, and every fresh process
(each CLI command, each worker) used to search them again. The sets that do not depend on
the network's state — the K shortest paths per pair on the intact topology, and the 1+1
candidate sets with no link failed — are stored once per (network content, path-cache size)
beside the network cache (:mod:`pcnalloc.network.store`) and loaded when a process first asks
for the network's shared path cache. Sets under fibre cuts depend on the failure state and
stay in memory.

**Key.** The SHA-256 of what the sets are computed from: the site count, the link ends, the
per-link propagation delay, the switching delay, the graph's site-pair → link mapping, the
number of paths kept per pair, the search engine, the SciPy/networkx versions (trees, Yen,
min-cost flow) and the source of the path modules (``paths.py``, ``ksp.py``, this one).
Any change to one of them (a network config that moves a latency, a larger ``path_cache``,
an edit of the search code) reads another file; a config change that leaves the
topology and latencies as they were keeps using the same sets, which are the same.

**Format.** ``.npz`` without pickle (loading runs no code): for each kind of set, every
field's arrays are concatenated flat with a per-set shape table; integer arrays are stored
as int32 and read back as the int64 the cache computes, so loaded sets are equal, array for
array, to computed ones.

**Writers.** A process writes only when it computed sets the file lacked: under an
exclusive lock on ``KEY.lock`` (:func:`locked`) it reads the current file, adds its own sets
(two processes compute the same set for the same pair, so a merge never conflicts) and
replaces the file through a temp name and a rename (:func:`pcnalloc.fileio.write_atomic`).
Readers take no lock: they see the old file or the new one, never a torn one; writers take
turns, so no worker's additions are lost. A file that cannot be read (truncated, corrupt,
another format) is ignored with one warning and replaced at the next write. A file holds at
most :data:`MAX_STORED_SETS` sets (the 1+1 sets, costlier to search, go in first).

Location and switch: ``$PCNALLOC_CACHE_DIR/paths`` (else the user cache folder from
platformdirs), ``PCNALLOC_CACHE_DIR=off`` disables it, like the network cache. Hand-written
because the layout is specific to these arrays (a generic pickle-based cache such as
joblib's would run code on load).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.network.model import CommNetwork

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the stored layout (part of every key)."""

MAX_STORED_SETS = 100_000
"""Most sets one file holds (about 45 MB on case1354pegase at 450 B a set, loaded in under a
second): pairs beyond it are searched by each process as before, and the file stops growing."""

PLAIN_FIELDS = ("links_PH", "nodes_PN", "hops_P", "prop_ms_P")
"""Arrays of a :class:`~pcnalloc.network.paths.PathSet`, in storage order."""

SET_FIELDS = (
    "present_K",
    "links_KH",
    "nodes_KN",
    "hops_K",
    "prop_ms_K",
    "has_backup_K",
    "backup_links_KB",
    "backup_nodes_KN",
    "backup_prop_ms_K",
)
"""Arrays of a :class:`~pcnalloc.network.paths.CandidateSet`, in storage order."""

_INDEX_FIELDS = frozenset(
    {"links_PH", "nodes_PN", "links_KH", "nodes_KN", "backup_links_KB", "backup_nodes_KN"}
)
"""Fields holding link or site indices (checked against the network's bounds on load)."""

Plain = dict[tuple[int, int], tuple[np.ndarray, ...]]
"""(src, dst) → PathSet arrays in :data:`PLAIN_FIELDS` order."""
Protected = dict[tuple[int, int], tuple[np.ndarray, ...]]
"""(K, src · N + dst) → CandidateSet arrays in :data:`SET_FIELDS` order."""


def store_dir() -> Path | None:
    """The folder of stored path sets, or None when caching is switched off."""
    from pcnalloc.network.store import cache_dir

    folder = cache_dir()
    return None if folder is None else folder / "paths"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` with suffix ``.lock`` while writing it.

    ``fcntl.flock`` (the kernel releases it when the holder dies, so a killed writer never
    leaves the store locked); where ``fcntl`` is missing (Windows) writers do not take turns,
    and a race only drops the additions of one of them. Hand-written because the one
    well-kept library for it (filelock) is not a dependency of the light edge install.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("paths.py", "ksp.py", "pathstore.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover - dependencies
        return "none"


def path_key(net: CommNetwork, n_cached: int, *, engine: str = "tree") -> str:
    """Content key of the path sets of ``net`` with ``n_cached`` paths per pair, searched by
    ``engine`` (:data:`pcnalloc.network.paths.ENGINES`; they may break latency ties apart)."""
    h = hashlib.sha256()
    head = [
        FORMAT,
        engine,
        int(n_cached),
        int(net.n_sites),
        int(net.n_links),
        float(net.config.switching_delay_ms),
        _version("scipy"),
        _version("networkx"),
        _code_hash(),
    ]
    h.update(json.dumps(head).encode())
    h.update(np.ascontiguousarray(net.link_ends, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(net.link_prop_ms, dtype=np.float64).tobytes())
    edges = sorted((min(a, b), max(a, b), int(e)) for a, b, e in net.graph.edges(data="link"))
    h.update(np.asarray(edges, dtype=np.int64).reshape(-1, 3).tobytes())
    return h.hexdigest()[:32]


def _pack(entries: list[tuple[np.ndarray, ...]], fields: tuple[str, ...], tag: str) -> dict:
    """Flat arrays + shape tables for a list of same-layout array tuples."""
    out: dict[str, np.ndarray] = {}
    for i, f in enumerate(fields):
        arrs = [e[i] for e in entries]
        ndim = arrs[0].ndim if arrs else (1 if f.endswith(("_P", "_K")) else 2)
        shapes = np.asarray([a.shape for a in arrs], dtype=np.int64).reshape(-1, ndim)
        flat = np.concatenate([a.ravel() for a in arrs]) if arrs else np.zeros(0)
        if f in _INDEX_FIELDS or f.startswith("hops"):
            flat = flat.astype(np.int32)
        elif f.startswith(("present", "has_")):
            flat = flat.astype(np.bool_)
        else:
            flat = flat.astype(np.float64)
        out[f"{tag}/{f}"] = flat
        out[f"{tag}/{f}/shape"] = shapes
    return out


_DTYPES = {"i": np.int64, "b": np.bool_, "f": np.float64}


def _unpack(z: Any, fields: tuple[str, ...], tag: str, n: int, bound: int) -> list[list]:
    """Inverse of :func:`_pack`: per field, the list of ``n`` arrays (views of one copy)."""
    cols = []
    for f in fields:
        flat = z[f"{tag}/{f}"]
        shapes = z[f"{tag}/{f}/shape"]
        if shapes.shape[0] != n:
            raise ValueError(f"{tag}/{f}: {shapes.shape[0]} shapes for {n} sets")
        sizes = shapes.prod(axis=1)
        ends = np.cumsum(sizes)
        if (shapes < 0).any() or (ends[-1] if n else 0) != flat.shape[0]:
            raise ValueError(f"{tag}/{f}: shape table does not match the stored data")
        flat = flat.astype(_DTYPES[flat.dtype.kind])
        if f in _INDEX_FIELDS and flat.size and (flat.min() < 0 or flat.max() > bound):
            raise ValueError(f"{tag}/{f}: index out of range")
        starts = (ends - sizes).tolist()
        cols.append(
            [
                flat[s : s + int(sz)].reshape(tuple(sh))
                for s, sz, sh in zip(starts, sizes.tolist(), shapes.tolist(), strict=True)
            ]
        )
    return cols


def encode(key: str, plain: Plain, protected: Protected) -> bytes:
    """The ``.npz`` bytes of a store (see the module docstring)."""
    p_keys = sorted(plain)
    s_keys = sorted(protected)
    arrays: dict[str, np.ndarray] = {
        "plain/pairs": np.asarray(p_keys, dtype=np.int64).reshape(-1, 2),
        "protected/keys": np.asarray(s_keys, dtype=np.int64).reshape(-1, 2),
    }
    arrays.update(_pack([plain[k] for k in p_keys], PLAIN_FIELDS, "plain"))
    arrays.update(_pack([protected[k] for k in s_keys], SET_FIELDS, "protected"))
    header = {"format": FORMAT, "key": key}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool
    return buf.getvalue()


UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)
"""What reading a damaged or foreign store file raises."""


def read(path: Path, key: str, net: CommNetwork) -> tuple[Plain, Protected]:
    """The sets stored in ``path`` for ``key``; raises one of :data:`UNREADABLE` otherwise
    (a file of another key or format, truncated or corrupt data — the zip CRC is checked —
    or link/site indices outside ``net``)."""
    bound = max(net.n_links, net.n_sites)
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        if header.get("format") != FORMAT or header.get("key") != key:
            raise ValueError(f"stored path sets are for {header!r}, not format {FORMAT} {key}")
        p_keys = [tuple(k) for k in z["plain/pairs"].tolist()]
        s_keys = [tuple(k) for k in z["protected/keys"].tolist()]
        pcols = _unpack(z, PLAIN_FIELDS, "plain", len(p_keys), bound)
        scols = _unpack(z, SET_FIELDS, "protected", len(s_keys), bound)
    plain = {k: tuple(c[i] for c in pcols) for i, k in enumerate(p_keys)}
    protected = {k: tuple(c[i] for c in scols) for i, k in enumerate(s_keys)}
    return plain, protected
