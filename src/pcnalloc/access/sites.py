"""Where devices sit: the distribution-level buses of a grid case, and their distances.

Each candidate site is a bus below the highest voltage level of the case. Its substation is
the nearest (by line length) bus on the low-voltage side of a transformer; the PLC path is
the feeder from that substation (sum of line lengths) and the 5G distance is the straight
line to a base station at the substation. pandapower's MV benchmark networks (default
``mv_oberrhein``) load offline; a transmission case uses its lower-voltage buses (or, with a
single voltage level, every bus but the feeding ones, fed by its nearest generator bus).
A SimBench code (e.g. ``1-MV-rural--0-sw``) loads through ``simbench`` when the ``data``
extra is installed; without it the code is refused with one line naming the extra.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from pcnalloc.errors import NetworkError, UnknownCaseError

MV_NETWORKS: tuple[str, ...] = (
    "mv_oberrhein",
    "create_cigre_network_mv",
    "create_cigre_network_lv",
)
"""Distribution networks of pandapower accepted as ``grid`` besides the transmission cases."""
SIMBENCH_CODE = re.compile(r"^\d-(EHV|HV|MV|LV|EHVHV|HVMV|MVLV)-[\w]+-[\w]*-?[0-2]-(sw|no_sw)$")
"""Shape of a SimBench grid code (``1-MV-rural--0-sw``, ``1-HVMV-mixed-all-0-sw`` …)."""


@dataclass(frozen=True)
class SiteTable:
    """Candidate device sites of one grid.

    Attributes:
        grid: case name.
        bus: pandapower bus index of each site.
        substation: bus index of each site's substation (transformer LV bus).
        plc_km: feeder length from the substation (km), ≥ 0.05.
        g5_km: straight-line distance to the substation's base station (km), ≥ 0.05.
    """

    grid: str
    bus: np.ndarray
    substation: np.ndarray
    plc_km: np.ndarray
    g5_km: np.ndarray

    def __len__(self) -> int:
        return int(self.bus.size)


def accepted_grids() -> list[str]:
    """Every accepted ``grid`` name (SimBench codes with the ``data`` extra besides)."""
    from pcnalloc.network.builder import available_cases

    return [*MV_NETWORKS, "<SimBench code>", *available_cases()]


def _load(grid: str) -> Any:
    if SIMBENCH_CODE.match(grid):
        try:
            import simbench as sb
        except ImportError:
            from pcnalloc.errors import MissingExtraError

            raise MissingExtraError(
                "data", f"grid {grid!r} (a SimBench code)", "simbench"
            ) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sb.get_simbench_net(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower.networks as pn

        if grid in MV_NETWORKS:
            return getattr(pn, grid)()
        from pcnalloc.network.builder import available_cases, load_pandapower

        if grid not in available_cases():
            raise UnknownCaseError(grid, accepted_grids())
        return load_pandapower(grid)


def _xy(net: Any) -> dict[int, tuple[float, float]]:
    import json

    out: dict[int, tuple[float, float]] = {}
    if "geo" in net.bus:
        for idx, geo in net.bus.geo.items():
            if isinstance(geo, str):
                try:
                    lon, lat = json.loads(geo)["coordinates"][:2]
                except (ValueError, KeyError, TypeError):
                    continue
                out[int(idx)] = (float(lon), float(lat))
    return out


def _km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lon, lat) points (km)."""
    lon1, lat1, lon2, lat2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


@lru_cache(maxsize=8)
def site_table(grid: str) -> SiteTable:
    """Candidate sites of ``grid`` (cached per process).

    Raises:
        UnknownCaseError: ``grid`` is not a pandapower MV network nor a bundled case.
        NetworkError: the grid has no transformer or no bus below its top voltage.
    """
    import networkx as nx

    net = _load(grid)
    g = nx.Graph()
    g.add_nodes_from(int(b) for b in net.bus.index)
    for _, ln in net.line.iterrows():
        if bool(ln.get("in_service", True)):
            km = float(ln.get("length_km", 1.0) or 1.0)
            g.add_edge(int(ln.from_bus), int(ln.to_bus), km=km)
    for sw_table in ("switch",):
        sw = getattr(net, sw_table, None)
        if sw is not None and len(sw):
            for _, s in sw[(sw.et == "b") & sw.closed.astype(bool)].iterrows():
                g.add_edge(int(s.bus), int(s.element), km=0.0)
    top = float(net.bus.vn_kv.max())
    lower = [int(b) for b, kv in net.bus.vn_kv.items() if float(kv) < top]
    subs = sorted({int(b) for b in net.trafo.lv_bus}) if len(net.trafo) else []
    if not subs:  # one voltage level: substations at the feeding buses, sites elsewhere
        feed = set(net.ext_grid.bus.astype(int)) | set(net.gen.bus.astype(int))
        subs = sorted(feed)
        lower = [int(b) for b in net.bus.index if int(b) not in feed]
    if not lower or not subs:
        raise NetworkError(
            f"grid {grid!r} has no distribution-level buses or no transformer to host devices"
        )
    dist = nx.multi_source_dijkstra(g, subs, weight="km")
    lengths, paths = dist
    xy = _xy(net)
    bus, sub, plc, g5 = [], [], [], []
    for b in lower:
        if b in subs or b not in lengths:
            continue
        s = paths[b][0]
        d_line = float(lengths[b])
        # a straight line is never longer than the feeder (also guards non-geographic x/y)
        d_air = min(_km(xy[b], xy[s]), d_line) if b in xy and s in xy else 0.7 * d_line
        bus.append(b)
        sub.append(s)
        plc.append(max(0.05, d_line))
        g5.append(max(0.05, d_air))
    if not bus:
        raise NetworkError(f"grid {grid!r}: no distribution bus is connected to a substation")
    return SiteTable(
        grid=grid,
        bus=np.asarray(bus, dtype=np.int64),
        substation=np.asarray(sub, dtype=np.int64),
        plc_km=np.asarray(plc),
        g5_km=np.asarray(g5),
    )


def place_devices(table: SiteTable, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``table`` for ``n`` devices (without replacement while sites last)."""
    k = len(table)
    if n <= k:
        return np.sort(rng.choice(k, size=n, replace=False))
    return np.concatenate([np.arange(k), np.sort(rng.choice(k, size=n - k, replace=True))])
