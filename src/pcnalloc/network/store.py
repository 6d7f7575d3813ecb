"""On-disk cache of built networks, shared by every process and command on the machine.

Building a network from a pandapower case imports pandapower and loads the case (seconds,
redone by every CLI command and worker). A built :class:`CommNetwork` is a handful of arrays,
so it is stored once per (case, network config, code) as ``.npz`` (no pickle: loading runs no
code, whoever wrote the file) plus a small JSON header, and later builds load it in
milliseconds without importing pandapower.

The key hashes the case (its name, or the SHA-256 of a case file), the network config, the
pandapower version and the source of the modules that build networks, so a change to any of
them builds afresh. Where it lives: ``$PCNALLOC_CACHE_DIR``, else the user cache folder from
platformdirs (``~/.cache/pcnalloc`` on Linux); ``PCNALLOC_CACHE_DIR=off`` disables it. A file
that cannot be read is ignored (and rebuilt), never trusted half-way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import networkx as nx
import numpy as np

from pcnalloc.config import NetworkConfig
from pcnalloc.network.model import CommNetwork

log = logging.getLogger(__name__)

FORMAT = 1
"""Version of the stored layout (part of every key)."""

_ARRAYS = (
    "site_kv",
    "site_xy",
    "site_region",
    "link_ends",
    "link_length_km",
    "link_circuits",
    "link_capacity_mbps",
    "pool_capacity_kbps",
    "link_prop_ms",
    "edge_controllers",
)


def cache_dir() -> Path | None:
    """The cache folder, or None when caching is switched off."""
    env = os.environ.get("PCNALLOC_CACHE_DIR")
    if env is not None:
        return None if env.strip().lower() in ("", "off", "0", "none") else Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("pcnalloc")) / "networks"


def _code_hash() -> str:
    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("builder.py", "model.py", "store.py"):
        h.update((here / name).read_bytes())
    h.update((here.parent / "config.py").read_bytes())
    return h.hexdigest()


def _case_id(case: str) -> str:
    p = Path(case)
    if p.suffix and p.is_file():
        return "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return "case:" + case


def network_key(case: str, config: NetworkConfig) -> str:
    """Content key of a built network (see the module docstring)."""
    try:
        pp_version = metadata.version("pandapower")
    except metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        pp_version = "none"
    blob = json.dumps(
        [FORMAT, _case_id(case), config.model_dump(mode="json"), pp_version, _code_hash()],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def save(net: CommNetwork, folder: Path, key: str) -> Path:
    """Write ``net`` as ``KEY.npz`` atomically (temp file, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT,
        "name": net.name,
        "site_names": list(net.site_names),
        "site_buses": [list(map(int, b)) for b in net.site_buses],
        "control_centers": list(map(int, net.control_centers)),
        "length_estimated": bool(net.length_estimated),
        "config": net.config.model_dump(mode="json"),
    }
    arrays = {k: np.asarray(getattr(net, k)) for k in _ARRAYS}
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{key}.", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs type **kwds as bool
        os.chmod(tmp, 0o644)
        final = folder / f"{key}.npz"
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return final


def load(path: Path) -> CommNetwork:
    """Read a stored network (no pickle); raises ValueError/OSError/KeyError if unreadable."""
    with np.load(path, allow_pickle=False) as z:
        header = json.loads(bytes(z["header"]).decode())
        if header.get("format") != FORMAT:
            raise ValueError(f"stored network format {header.get('format')!r} != {FORMAT}")
        arrays = {k: z[k] for k in _ARRAYS}
    config = NetworkConfig.model_validate(header["config"])
    n = len(header["site_names"])
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for e, (a, b) in enumerate(arrays["link_ends"].tolist()):
        w = float(arrays["link_prop_ms"][e] + config.switching_delay_ms)
        graph.add_edge(int(a), int(b), link=e, w=w)
    return CommNetwork(
        name=header["name"],
        site_names=list(header["site_names"]),
        site_buses=[list(b) for b in header["site_buses"]],
        control_centers=(int(header["control_centers"][0]), int(header["control_centers"][1])),
        length_estimated=bool(header["length_estimated"]),
        config=config,
        graph=graph,
        **arrays,
    )


def load_or_build(
    case: str, config: NetworkConfig, build: Callable[[str, NetworkConfig], CommNetwork]
) -> CommNetwork:
    """The stored network for (case, config), else ``build(case, config)`` stored for next
    time. Graph-JSON cases are cheap to build and are not stored."""
    folder = cache_dir()
    if folder is None or _is_graph_json(case):
        return build(case, config)
    key = network_key(case, config)
    path = folder / f"{key}.npz"
    if path.is_file():
        try:
            return load(path)
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable network cache %s (%s); rebuilding", path, err)
    net = build(case, config)
    try:
        save(net, folder, key)
    except OSError as err:  # a read-only home must not stop the run
        log.warning("cannot write network cache in %s: %s", folder, err)
    return net


def _is_graph_json(case: str) -> bool:
    p = Path(case)
    if p.suffix != ".json" or not p.is_file():
        return False
    try:
        head = json.loads(p.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(head, dict) and "sites" in head
