"""Shared fixtures: tiny graph-JSON networks, catalogs and fast environment configs.

The tiny network is a 6-site ring with three chords (9 OPGW links, two regions, control
centers ``A`` and ``D``). Its site voltages span the capacity classes of DESIGN §2, so the
capacity-by-voltage rule is exercised without loading a pandapower case.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from pcnalloc.config import EnvConfig, NetworkConfig, env_config
from pcnalloc.network import CommNetwork, cached_network
from pcnalloc.network.builder import from_pandapower, load_pandapower

# Tests keep the on-disk network cache (pcnalloc.network.store) out of the user's home:
# one fresh folder per test session, inherited by the subprocesses tests start.
os.environ.setdefault("PCNALLOC_CACHE_DIR", tempfile.mkdtemp(prefix="pcnalloc-cache-"))
os.environ.setdefault("PCNALLOC_KEY_DIR", tempfile.mkdtemp(prefix="pcnalloc-keys-"))

TINY_SITES: tuple[dict[str, Any], ...] = (
    {"id": "A", "kv": 110.0, "x": 0.0, "y": 1.0, "region": "north"},
    {"id": "B", "kv": 66.0, "x": 0.9, "y": 0.5, "region": "north"},
    {"id": "C", "kv": 66.0, "x": 0.9, "y": -0.5, "region": "north"},
    {"id": "D", "kv": 110.0, "x": 0.0, "y": -1.0, "region": "south"},
    {"id": "E", "kv": 33.0, "x": -0.9, "y": -0.5, "region": "south"},
    {"id": "F", "kv": 33.0, "x": -0.9, "y": 0.5, "region": "south"},
)
"""Sites of the tiny network (kV decides link capacity: 110 kV → 622.08 Mb/s, else 155.52)."""

TINY_LINKS: tuple[tuple[str, str, float], ...] = (
    ("A", "B", 40.0),  # ring
    ("B", "C", 55.0),
    ("C", "D", 30.0),
    ("D", "E", 25.0),
    ("E", "F", 60.0),
    ("F", "A", 35.0),
    ("A", "D", 80.0),  # chords
    ("B", "E", 90.0),
    ("C", "F", 70.0),
)
"""(end, end, length_km) of each link; every site has degree 3, so 1+1 pairs always exist."""


def write_tiny_graph(
    path: Path, *, capacity_mbps: float | None = None, with_regions: bool = True
) -> Path:
    """Write the tiny network as a pcnalloc graph JSON file and return its path.

    Args:
        path: file to write (``.json``).
        capacity_mbps: if given, every link gets this explicit line rate (Mb/s) instead of
            the rate derived from voltage; small values make pools fill within a few hundred
            requests and keep the warm-start population small.
        with_regions: give sites a ``region`` label (else regions come from Louvain).
    """
    sites = [dict(s) for s in TINY_SITES]
    if not with_regions:
        for s in sites:
            s.pop("region")
    links: list[dict[str, Any]] = [{"a": a, "b": b, "length_km": km} for a, b, km in TINY_LINKS]
    if capacity_mbps is not None:
        for lk in links:
            lk["capacity_mbps"] = capacity_mbps
    data = {"name": path.stem, "sites": sites, "links": links, "control_centers": ["A", "D"]}
    path.write_text(json.dumps(data, indent=1))
    return path


@pytest.fixture
def tiny_graph_json(tmp_path: Path) -> Path:
    """The 6-site ring-with-chords graph JSON in a fresh temporary folder."""
    return write_tiny_graph(tmp_path / "tiny.json")


@pytest.fixture(scope="session")
def tiny_graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session-wide copy of the tiny graph (usable from hypothesis tests and module fixtures)."""
    return write_tiny_graph(tmp_path_factory.mktemp("graphs") / "tiny.json")


@pytest.fixture(scope="session")
def small_pool_graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny graph with 50 Mb/s on every link: pools fill fast, warm start is cheap."""
    return write_tiny_graph(tmp_path_factory.mktemp("graphs") / "tiny50.json", capacity_mbps=50.0)


@pytest.fixture(scope="session")
def congested_graph_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny graph with 20 Mb/s per link: a Zone I pool holds one teleprotection flow and
    the warm-start population stays around a hundred flows (cheap invariant checks)."""
    return write_tiny_graph(tmp_path_factory.mktemp("graphs") / "tiny20.json", capacity_mbps=20.0)


@pytest.fixture(scope="session")
def tiny_net(tiny_graph_file: Path) -> CommNetwork:
    """The tiny network built with the default :class:`NetworkConfig`."""
    return cached_network(str(tiny_graph_file), NetworkConfig())


@pytest.fixture(scope="session")
def pp_case() -> Callable[[str], Any]:
    """Load (once per session) a bundled pandapower case by name; treat the net as read-only.

    Loading a case costs about a second, so every test shares one copy.
    """
    nets: dict[str, Any] = {}

    def get(case: str) -> Any:
        if case not in nets:
            nets[case] = load_pandapower(case)
        return nets[case]

    return get


@pytest.fixture(scope="session")
def case_network(pp_case: Callable[[str], Any]) -> Callable[[str], CommNetwork]:
    """Build (once per session) the network of a pandapower case with default settings.

    Pass it to ``PowerCommEnv(..., network=...)`` to skip loading the case again.
    """
    nets: dict[str, CommNetwork] = {}

    def get(case: str) -> CommNetwork:
        if case not in nets:
            nets[case] = from_pandapower(pp_case(case), name=case, config=NetworkConfig())
        return nets[case]

    return get


STRESS_EVENTS: dict[str, float] = {
    "faults_per_hour": 300.0,
    "emergency_minutes": 1.0,
    "burst_rate_per_s": 2.0,
    "fiber_cuts_per_hour": 600.0,
    "repair_minutes": 1.0,
}
"""Event rates high enough that a few hundred requests see faults, bursts, cuts and repairs."""

CALM_EVENTS: dict[str, float] = {"faults_per_hour": 0.0, "fiber_cuts_per_hour": 0.0}
"""No grid faults and no fiber cuts: only the tests' own events happen."""


@pytest.fixture(scope="session")
def make_config() -> Callable[..., EnvConfig]:
    """Factory of :class:`EnvConfig` from a case plus nested overrides.

    ``make_config(case, events="stress"|"calm"|None, **overrides)``; ``overrides`` follow
    :func:`pcnalloc.config.env_config` (e.g. ``traffic={"load": 1.5}``) and are merged with
    the chosen event preset.
    """

    def make(case: str | Path, *, events: str | None = None, **overrides: Any) -> EnvConfig:
        over = {k: dict(v) if isinstance(v, dict) else v for k, v in overrides.items()}
        over.setdefault("network", {})["case"] = str(case)
        if events is not None:
            preset = {"stress": STRESS_EVENTS, "calm": CALM_EVENTS}[events]
            traffic = over.setdefault("traffic", {})
            traffic["events"] = {**preset, **traffic.get("events", {})}
        return env_config(**over)

    return make


@pytest.fixture
def protection_catalog(tmp_path: Path) -> Path:
    """The packaged catalog with Zone I traffic only 1+1 teleprotection and SCADA (2 Mb/s).

    Every packaged class name is kept (the packaged rules name them); pmu_wams and
    distribution_automation get no load, so half of the Zone I requests are protected, and
    the other zones' flows hold ten days, so most requests are Zone I ones.
    """
    src = resources.files("pcnalloc") / "data" / "services.yaml"
    raw = yaml.safe_load(src.read_text())
    classes = raw["classes"]
    for name in ("pmu_wams", "distribution_automation"):
        classes[name]["load_share"] = 0.0
    classes["teleprotection"]["load_share"] = 0.5
    classes["scada"].update(load_share=0.5, bandwidth_mbps=2.048)
    for c in classes.values():
        if c["zone"] != "I":
            c["mean_holding_s"] = 864_000.0
    p = tmp_path / "protection.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p
