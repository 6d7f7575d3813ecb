"""Service catalog: the packaged DESIGN §3 classes, vectorised arrays, typed errors on bad YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from pcnalloc.config import SLICES
from pcnalloc.errors import CatalogError, ConfigError, PcnallocError
from pcnalloc.traffic import load_catalog
from pcnalloc.traffic.catalog import ZONE_SLICE

DESIGN_TABLE = {
    # class: (zone, priority, value, Mb/s, max latency ms, grant levels, 1+1)
    "teleprotection": ("I", 0, 10, 2.048, 10, [1.0], True),
    "pmu_wams": ("I", 1, 8, 0.5, 30, [1.0], False),
    "scada": ("I", 1, 8, 0.128, 100, [1.0], False),
    "distribution_automation": ("I", 1, 6, 2.0, 50, [1.0], False),
    "dispatch_voice": ("II", 2, 4, 0.064, 150, [1.0], False),
    "metering": ("II", 3, 3, 0.5, 1000, [1.0, 0.5], False),
    "video_surveillance": ("III", 5, 2, 4.0, 300, [1.0, 0.75, 0.5], False),
    "ami_iot": ("III", 4, 2, 1.0, 2000, [1.0, 0.5], False),
    "office": ("IV", 6, 1, 10.0, 500, [1.0, 0.5, 0.25], False),
}


def test_packaged_catalog_matches_design() -> None:
    cat = load_catalog()
    assert cat.names == list(DESIGN_TABLE)
    for i, (name, row) in enumerate(DESIGN_TABLE.items()):
        zone, prio, value, mbps, lat, levels, protected = row
        c = cat.classes[i]
        assert (c.zone, c.priority, c.value, c.bandwidth_mbps) == (zone, prio, value, mbps), name
        assert (c.max_latency_ms, c.grant_levels) == (lat, levels), name
        assert bool(cat.protected_C[i]) == protected, name
        assert SLICES[cat.slice_C[i]] == ZONE_SLICE[zone]
        assert cat.bandwidth_kbps_C[i] == round(mbps * 1000)
        np.testing.assert_allclose(cat.grant_CL[i, : len(levels)], levels)
        assert (cat.grant_CL[i, len(levels) :] == 0).all()
    assert cat.index("scada") == 2
    # Load shares of each slice sum to 1 in the packaged file.
    for s in range(len(SLICES)):
        assert cat.load_share_C[cat.slice_C == s].sum() == pytest.approx(1.0)


def test_catalog_arrays_are_vectorised(tmp_path: Path) -> None:
    cat = load_catalog(max_levels=4)
    C = cat.n_classes
    for arr in (cat.slice_C, cat.bandwidth_kbps_C, cat.priority_C, cat.value_C, cat.protected_C):
        assert arr.shape == (C,)
    assert cat.grant_CL.shape == (C, 4)
    assert cat.bandwidth_kbps_C.dtype.kind == "i"


def _default_raw() -> dict:
    import importlib.resources as res

    return yaml.safe_load((res.files("pcnalloc") / "data" / "services.yaml").read_text())


def _write(tmp_path: Path, raw: dict | str) -> Path:
    p = tmp_path / "catalog.yaml"
    p.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return p


def test_replacement_catalog_round_trip(tmp_path: Path) -> None:
    raw = _default_raw()
    raw["classes"]["office"]["bandwidth_mbps"] = 20.0
    del raw["classes"]["video_surveillance"]
    cat = load_catalog(_write(tmp_path, raw))
    assert "video_surveillance" not in cat.names and cat.n_classes == 8
    assert cat.bandwidth_kbps_C[cat.index("office")] == 20_000
    assert cat.source.endswith("catalog.yaml")


def test_yaml_syntax_error(tmp_path: Path) -> None:
    p = _write(tmp_path, "classes:\n  scada: {zone: I, priority: [1\n")
    with pytest.raises(CatalogError, match=r"catalog\.yaml") as err:
        load_catalog(p)
    assert isinstance(err.value, ConfigError) and isinstance(err.value, PcnallocError)
    assert "\n" not in str(err.value)  # one-line message for the CLI


def test_missing_catalog_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"nope\.yaml"):
        load_catalog(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("cls", "field", "value", "needles"),
    [
        ("scada", "bandwidth_mbps", -1.0, ["scada", "bandwidth_mbps", "-1.0"]),
        ("office", "colour", "blue", ["office", "colour"]),
        ("metering", "zone", "V", ["metering", "zone", "'V'"]),
        ("video_surveillance", "grant_levels", [0.5, 1.0], ["video_surveillance", "grant_levels"]),
        ("ami_iot", "priority", 9, ["ami_iot", "priority", "9"]),
        ("office", "endpoints", "anywhere", ["office", "endpoints", "anywhere"]),
        ("teleprotection", "protection", "2+2", ["teleprotection", "protection", "2+2"]),
    ],
)
def test_schema_errors_name_class_and_field(
    tmp_path: Path, cls: str, field: str, value: object, needles: list[str]
) -> None:
    raw = _default_raw()
    raw["classes"][cls][field] = value
    with pytest.raises(CatalogError) as err:
        load_catalog(_write(tmp_path, raw))
    msg = str(err.value)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_missing_field_and_unknown_top_level_key(tmp_path: Path) -> None:
    raw = _default_raw()
    del raw["classes"]["scada"]["max_latency_ms"]
    with pytest.raises(CatalogError, match=r"scada\.max_latency_ms"):
        load_catalog(_write(tmp_path, raw))
    raw = _default_raw()
    raw["services"] = {}
    with pytest.raises(CatalogError, match="services"):
        load_catalog(_write(tmp_path, raw))
    with pytest.raises(CatalogError, match="classes"):
        load_catalog(_write(tmp_path, {"classes": {}}))
    with pytest.raises(CatalogError, match="mapping"):
        load_catalog(_write(tmp_path, "- just\n- a list\n"))


def test_slice_with_zero_load_share(tmp_path: Path) -> None:
    raw = _default_raw()
    for name in ("video_surveillance", "ami_iot", "office"):
        raw["classes"][name]["load_share"] = 0.0
    with pytest.raises(CatalogError, match="mgmt"):
        load_catalog(_write(tmp_path, raw))


def test_env_reports_catalog_errors(tmp_path: Path, tiny_graph_json: Path) -> None:
    from pcnalloc.envs import PowerCommEnv

    raw = _default_raw()
    raw["classes"]["pmu_wams"]["bandwidth_mbps"] = -0.5
    p = _write(tmp_path, raw)
    cfg = {"network": {"case": str(tiny_graph_json)}, "traffic": {"catalog": str(p)}}
    with pytest.raises(CatalogError, match="pmu_wams"):
        PowerCommEnv(cfg)


def test_env_accepts_a_replacement_catalog_with_other_class_names(
    tmp_path: Path, tiny_graph_json: Path
) -> None:
    from pcnalloc.envs import PowerCommEnv

    raw = _default_raw()
    keep = {"teleprotection", "scada", "metering", "office"}
    raw["classes"] = {k: v for k, v in raw["classes"].items() if k in keep}
    p = _write(tmp_path, raw)
    assert set(load_catalog(p).names) == keep
    cfg = {"network": {"case": str(tiny_graph_json)}, "traffic": {"catalog": str(p)}}
    env = PowerCommEnv(cfg, observation="compact")
    env.reset(seed=0)
    assert env.catalog.n_classes == 4
