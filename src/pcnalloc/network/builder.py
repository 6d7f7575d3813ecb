"""Grid case (pandapower, MATPOWER, JSON graph) → :class:`CommNetwork`, following DESIGN §2.

Sites merge buses joined by transformers or closed bus-bus switches; each line between two
sites is an OPGW fiber link (parallel lines merge, counted in ``circuits``); length comes from
the data, or from reactance (x / 0.4 Ω/km) when the case carries placeholder lengths.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from pcnalloc.config import SLICES, NetworkConfig
from pcnalloc.errors import NetworkError, UnknownCaseError, choices
from pcnalloc.network.model import CommNetwork, capacity_for_kv

log = logging.getLogger(__name__)


def available_cases() -> list[str]:
    """Names of the grid cases bundled with pandapower that load offline."""
    import pandapower.networks as pn

    skip = {"Point"}
    return sorted(
        n
        for n in dir(pn)
        if (n.startswith("case") or n in ("GBnetwork", "GBreducednetwork", "iceland"))
        and n not in skip
        and callable(getattr(pn, n))
    )


class _UnionFind:
    def __init__(self, items: np.ndarray) -> None:
        self.parent = {int(i): int(i) for i in items}

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def load_pandapower(case: str) -> Any:
    """Load a pandapower net by bundled case name or from a .m/.mat/.json file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower as pp
        import pandapower.networks as pn

        path = Path(case)
        if path.suffix in (".m", ".mat"):
            if not path.is_file():
                raise UnknownCaseError(case, available_cases())
            from pandapower.converter.matpower import from_mpc

            try:
                return from_mpc(str(path))
            except Exception as err:  # the converter raises many kinds; name the file
                raise NetworkError(f"cannot read MATPOWER file {case!r}: {err}") from None
        if path.suffix == ".json":
            if not path.is_file():
                raise UnknownCaseError(case, available_cases())
            try:
                return pp.from_json(str(path))
            except Exception as err:  # pandapower raises many kinds on a foreign JSON
                raise NetworkError(
                    f"cannot read {case!r}: neither a pcnalloc graph JSON (an object with "
                    f"'sites' and 'links') nor a pandapower JSON ({type(err).__name__}: "
                    f"{' '.join(str(err).split())[:200]})"
                ) from None
        if case not in available_cases():
            raise UnknownCaseError(case, available_cases())
        return getattr(pn, case)()


def _bus_xy(net: Any) -> dict[int, tuple[float, float]]:
    out: dict[int, tuple[float, float]] = {}
    if "geo" not in net.bus:
        return out
    for idx, geo in net.bus.geo.items():
        if isinstance(geo, str):
            try:
                coords = json.loads(geo)["coordinates"]
                out[int(idx)] = (float(coords[0]), float(coords[1]))
            except (ValueError, KeyError, TypeError, IndexError):
                continue
    return out


def from_pandapower(  # noqa: C901 - one branch per pandapower element table
    net: Any, name: str, config: NetworkConfig
) -> CommNetwork:
    """Build the communication network of a pandapower net."""
    bus = net.bus[net.bus.in_service.astype(bool)]
    uf = _UnionFind(bus.index.to_numpy())
    for tbl, cols in (("trafo", ("hv_bus", "lv_bus")), ("trafo3w", ("hv_bus", "mv_bus", "lv_bus"))):
        t = net[tbl]
        if len(t) == 0:
            continue
        t = t[t.in_service.astype(bool)]
        for row in t[list(cols)].itertuples(index=False):
            ends = [int(b) for b in row if int(b) in uf.parent]
            for b in ends[1:]:
                uf.union(ends[0], b)
    sw = net.switch
    if len(sw):
        bb = sw[(sw.et == "b") & sw.closed.astype(bool)]
        for a, b in zip(bb.bus, bb.element, strict=True):
            if int(a) in uf.parent and int(b) in uf.parent:
                uf.union(int(a), int(b))

    lines = net.line[net.line.in_service.astype(bool)]
    lines = lines[lines.from_bus.isin(uf.parent) & lines.to_bus.isin(uf.parent)]
    placeholder = len(lines) > 0 and bool(np.allclose(lines.length_km.to_numpy(), 1.0))
    vn = bus.vn_kv.to_dict()
    # Group parallel lines per site pair.
    groups: dict[tuple[int, int], dict[str, float]] = {}
    for ln in lines.itertuples():
        a, b = uf.find(int(ln.from_bus)), uf.find(int(ln.to_bus))
        if a == b:
            continue
        key = (min(a, b), max(a, b))
        par = float(getattr(ln, "parallel", 1) or 1)
        if placeholder:
            x_ohm = float(ln.x_ohm_per_km) * float(ln.length_km)
            length = x_ohm / config.ohm_per_km
        else:
            length = float(ln.length_km)
        length = float(np.clip(length, config.min_length_km, config.max_length_km))
        kv = max(float(vn[int(ln.from_bus)]), float(vn[int(ln.to_bus)]))
        g = groups.setdefault(key, {"n": 0.0, "len": 0.0, "kv": 0.0})
        g["n"] += par
        g["len"] += length * par
        g["kv"] = max(g["kv"], kv)
    if not groups:
        raise NetworkError(f"case {name!r} has no line between two different sites")

    graph = nx.Graph()
    graph.add_edges_from(groups)
    if not nx.is_connected(graph):
        comps = sorted(nx.connected_components(graph), key=len, reverse=True)
        dropped = sum(len(c) for c in comps[1:])
        log.warning(
            "case %s: keeping the largest of %d islands (%d sites dropped)",
            name,
            len(comps),
            dropped,
        )
        graph = graph.subgraph(comps[0]).copy()
    roots = sorted(graph.nodes)
    members: dict[int, list[int]] = {r: [] for r in roots}
    for b in bus.index:
        r = uf.find(int(b))
        if r in members:
            members[r].append(int(b))
    site_of_root = {r: i for i, r in enumerate(roots)}
    xy_bus = _bus_xy(net)
    site_kv = np.array([max(vn[b] for b in members[r]) for r in roots], dtype=float)
    xy = np.array(
        [
            np.mean([xy_bus[b] for b in members[r] if b in xy_bus], axis=0)
            if any(b in xy_bus for b in members[r])
            else (np.nan, np.nan)
            for r in roots
        ],
        dtype=float,
    ).reshape(-1, 2)
    keys = sorted((site_of_root[a], site_of_root[b]) for a, b in groups if a in site_of_root)
    inv = {
        (site_of_root[a], site_of_root[b]): g for (a, b), g in groups.items() if a in site_of_root
    }
    ends_E2 = np.array(keys, dtype=np.int64).reshape(-1, 2)
    circuits = np.array([inv[k]["n"] for k in keys])
    length_E = np.array([inv[k]["len"] / inv[k]["n"] for k in keys])
    kv_E = np.array([inv[k]["kv"] for k in keys])

    slack_sites = (
        [
            site_of_root[uf.find(int(b))]
            for b in net.ext_grid[net.ext_grid.in_service.astype(bool)].bus
            if int(b) in uf.parent and uf.find(int(b)) in site_of_root
        ]
        if len(net.ext_grid)
        else []
    )
    zones = None
    if "zone" in bus and bus.zone.notna().any() and bus.zone.nunique() > 1:
        zmap = bus.zone.to_dict()
        zones = [str(zmap[min(members[r])]) for r in roots]
    return assemble(
        name=name,
        site_names=[f"bus{r}" for r in roots],
        site_buses=[sorted(members[r]) for r in roots],
        site_kv=site_kv,
        site_xy=xy,
        link_ends=ends_E2,
        link_length_km=length_E,
        link_circuits=circuits,
        link_kv=kv_E,
        link_capacity_mbps=None,
        primary_cc=slack_sites[0] if slack_sites else None,
        zones=zones,
        length_estimated=placeholder,
        config=config,
    )


def assemble(
    *,
    name: str,
    site_names: list[str],
    site_buses: list[list[int]],
    site_kv: np.ndarray,
    site_xy: np.ndarray,
    link_ends: np.ndarray,
    link_length_km: np.ndarray,
    link_circuits: np.ndarray,
    link_kv: np.ndarray,
    link_capacity_mbps: np.ndarray | None,
    primary_cc: int | None,
    zones: list[str] | None,
    length_estimated: bool,
    config: NetworkConfig,
    backup_cc: int | None = None,
) -> CommNetwork:
    """Derive capacities, pools, control centers, regions and edge controllers."""
    n = len(site_names)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    prop_ms = link_length_km * config.propagation_us_per_km / 1000.0
    for e, (a, b) in enumerate(link_ends):
        graph.add_edge(int(a), int(b), link=e, w=float(prop_ms[e] + config.switching_delay_ms))
    if n < 2 or not nx.is_connected(graph):
        raise NetworkError(f"network {name!r} must be connected with at least two sites")
    cap = capacity_for_kv(link_kv) if link_capacity_mbps is None else np.asarray(link_capacity_mbps)
    shares = np.array([config.slice_shares[s] for s in SLICES])
    pools = np.floor(cap[:, None] * 1000.0 * shares[None, :]).astype(np.int64)

    degree = np.bincount(link_ends.ravel(), minlength=n)
    if primary_cc is None:
        primary_cc = int(np.argmax(degree))
    if backup_cc is None:
        if n > 600:
            bc = nx.betweenness_centrality(graph, k=min(n, 200), seed=config.region_seed)
        else:
            bc = nx.betweenness_centrality(graph)
        order = sorted(bc, key=lambda s: (-bc[s], s))
        backup_cc = next(s for s in order if s != primary_cc)

    if zones is not None and len(set(zones)) > 1:
        labels = sorted(set(zones))
        region = np.array([labels.index(z) for z in zones], dtype=np.int64)
    else:
        region = _louvain_regions(graph, config)
    n_regions = int(region.max()) + 1
    edge_ctrl = np.array(
        [
            int(max(np.flatnonzero(region == r), key=lambda s: (degree[s], -s)))
            for r in range(n_regions)
        ],
        dtype=np.int64,
    )
    if np.isnan(site_xy).any():
        pos = nx.spring_layout(graph, seed=config.region_seed)
        missing = np.isnan(site_xy).any(axis=1)
        site_xy = site_xy.copy()
        site_xy[missing] = np.array([pos[i] for i in np.flatnonzero(missing)])
    return CommNetwork(
        name=name,
        site_names=site_names,
        site_buses=site_buses,
        site_kv=site_kv,
        site_xy=site_xy,
        site_region=region,
        link_ends=link_ends,
        link_length_km=link_length_km,
        link_circuits=link_circuits,
        link_capacity_mbps=cap.astype(float),
        pool_capacity_kbps=pools,
        link_prop_ms=prop_ms,
        control_centers=(int(primary_cc), int(backup_cc)),
        edge_controllers=edge_ctrl,
        length_estimated=length_estimated,
        config=config,
        graph=graph,
    )


def _louvain_regions(graph: nx.Graph, config: NetworkConfig) -> np.ndarray:
    """Louvain communities (fixed seed), the level whose count is nearest N / sites_per_region."""
    n = graph.number_of_nodes()
    target = max(1, round(n / config.sites_per_region))
    region = np.zeros(n, dtype=np.int64)
    if target == 1:
        return region
    best: list[set[int]] | None = None
    for level in nx.community.louvain_partitions(graph, seed=config.region_seed):
        if best is None or abs(len(level) - target) <= abs(len(best) - target):
            best = [set(c) for c in level]
        if len(level) <= target:
            break
    assert best is not None
    for r, comm in enumerate(sorted(best, key=min)):
        region[list(comm)] = r
    return region


MAX_LENGTH_KM = 20_000.0
"""Longest fiber link a graph JSON may declare (km)."""
MAX_CAPACITY_MBPS = 10_000_000.0
"""Largest line rate a graph JSON may declare (Mb/s, 10 Tb/s); pools are integer kb/s."""


def _check_numbers(
    path: Path, what: str, x: np.ndarray, *, lo: float, hi: float, lo_open: bool = True
) -> None:
    """Refuse NaN/inf and values outside (lo, hi] (or [lo, hi]) naming the first bad one."""
    ok = np.isfinite(x) & (x <= hi) & ((x > lo) if lo_open else (x >= lo))
    if not ok.all():
        bad = float(x[~ok][0])
        rng = f"{'>' if lo_open else '≥'} {lo:g} and ≤ {hi:g}"
        raise NetworkError(f"{path}: {what} {bad!r} is invalid; accepted: finite numbers {rng}")


def from_graph_json(path: Path, config: NetworkConfig) -> CommNetwork:
    """Build from a pcnalloc graph JSON file (schema in docs/network.md)."""
    try:
        data = json.loads(path.read_text())
        sites = data["sites"]
        links = data["links"]
        if not isinstance(sites, list) or not isinstance(links, list):
            raise NetworkError(f"{path}: 'sites' and 'links' must be lists")
        ids = [str(s["id"]) for s in sites]
        index = {sid: i for i, sid in enumerate(ids)}
        if len(index) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})
            raise NetworkError(f"{path}: duplicate site ids {dup}; every site id must be unique")
        kv = np.array([float(s.get("kv", 0.0)) for s in sites])
        _check_numbers(path, "site kv", kv, lo=0.0, hi=2000.0, lo_open=False)
        xy = np.array([[float(s.get("x", np.nan)), float(s.get("y", np.nan))] for s in sites])
        if np.isinf(xy).any():
            raise NetworkError(f"{path}: site x/y must be finite numbers (or absent)")
        if not links:
            raise NetworkError(f"{path}: a network needs at least one link")
        for j, lk in enumerate(links):
            for end in ("a", "b"):
                if str(lk[end]) not in index:
                    raise NetworkError(
                        f"{path}: link {j} end {end}={lk[end]!r} names no site; "
                        f"accepted: {choices(ids)}"
                    )
        ends = np.array(
            [[index[str(lk["a"])], index[str(lk["b"])]] for lk in links], dtype=np.int64
        )
        if (ends[:, 0] == ends[:, 1]).any():
            raise NetworkError(f"{path}: a link joins a site to itself")
        length = np.array([float(lk["length_km"]) for lk in links])
        _check_numbers(path, "link length_km", length, lo=0.0, hi=MAX_LENGTH_KM)
        caps = [lk.get("capacity_mbps") for lk in links]
        given = np.array([c is not None for c in caps])  # absent: derived from the voltage
        cap = (
            None
            if not given.any()
            else np.array([float(c) if c is not None else np.nan for c in caps])
        )
        if cap is not None:  # a NaN that the file gives is refused, not taken as absent
            _check_numbers(path, "link capacity_mbps", cap[given], lo=0.0, hi=MAX_CAPACITY_MBPS)
        circuits = np.array([float(lk.get("circuits", 1)) for lk in links])
        _check_numbers(path, "link circuits", circuits, lo=0.0, hi=1000.0)
        link_kv = np.maximum(kv[ends[:, 0]], kv[ends[:, 1]])
        if cap is not None and not given.all():
            cap = np.where(given, cap, capacity_for_kv(link_kv))
        for c in data.get("control_centers", []):
            if str(c) not in index:
                raise NetworkError(f"{path}: control center {c!r} names no site")
        cc = [index[str(c)] for c in data.get("control_centers", [])]
        zones = [str(s["region"]) for s in sites] if all("region" in s for s in sites) else None
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise NetworkError(f"malformed graph JSON {str(path)!r}: {err!r}") from None
    return assemble(
        name=str(data.get("name", path.stem)),
        site_names=ids,
        site_buses=[[i] for i in range(len(ids))],
        site_kv=kv,
        site_xy=xy,
        link_ends=ends,
        link_length_km=length,
        link_circuits=circuits,
        link_kv=link_kv,
        link_capacity_mbps=cap,
        primary_cc=cc[0] if cc else None,
        backup_cc=cc[1] if len(cc) > 1 else None,
        zones=zones,
        length_estimated=False,
        config=config,
    )


def build_network(case: str | None = None, config: NetworkConfig | None = None) -> CommNetwork:
    """Build a :class:`CommNetwork` from a case name or file.

    Args:
        case: pandapower case name (``case30``), MATPOWER ``.m``/``.mat`` file, pandapower
            ``.json`` file, or a pcnalloc graph ``.json`` (recognised by its ``sites`` key).
            Defaults to ``config.case``.
        config: network config; defaults to :class:`NetworkConfig`.
    """
    config = config or NetworkConfig()
    case = case or config.case
    path = Path(case)
    if path.suffix == ".json" and path.is_file():
        try:
            head = json.loads(path.read_text())
        except ValueError as err:
            raise NetworkError(f"malformed JSON {case!r}: {err}") from None
        if isinstance(head, dict) and "sites" in head:
            return from_graph_json(path, config)
    net = load_pandapower(case)
    return from_pandapower(net, name=path.stem if path.suffix else case, config=config)


_CACHE: dict[tuple[str, str], CommNetwork] = {}


def cached_network(case: str, config: NetworkConfig) -> CommNetwork:
    """:func:`build_network`, memoised per (case, config) within the process and on disk
    across processes (:mod:`pcnalloc.network.store`).

    A :class:`CommNetwork` is immutable, so envs and workers in one process share it.
    """
    key = (case, config.model_dump_json())
    if key not in _CACHE:
        from pcnalloc.network.store import load_or_build

        _CACHE[key] = load_or_build(case, config, build_network)
    return _CACHE[key]
