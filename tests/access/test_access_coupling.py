"""Coupling access → backbone: the volume the devices delivered is the demand the backbone is
offered (per site and class, and over a whole coupled episode); planted faults are caught."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.access import access_config, make_access_policy, run_access
from pcnalloc.cli import main
from pcnalloc.twolayer.coupling import (
    CouplingConfig,
    CouplingError,
    check_conservation,
    coupled_env,
    delivered_traffic,
    offered_bits,
    run_coupled,
    substation_sites,
    to_requests,
)

SMALL = dict(devices=12, plc_subchannels=10, g5_subchannels=4, quota=3, epochs=3, slots_per_epoch=3)


@pytest.fixture(scope="module")
def backbone():  # type: ignore[no-untyped-def]
    from pcnalloc.config import EnvConfig
    from pcnalloc.envs.power_comm import PowerCommEnv

    cfg = EnvConfig.model_validate({"network": {"case": "case14"}, "episode_requests": 5000})
    return cfg, PowerCommEnv(cfg)


def test_delivered_bits_are_arrivals_minus_final_backlog() -> None:
    cfg = access_config(SMALL)
    tr = delivered_traffic(make_access_policy("matching"), cfg, seed=4)
    from pcnalloc.access.model import AccessModel

    m = AccessModel(cfg, 4)
    served = []
    run_access(make_access_policy("matching"), cfg, seed=4, on_slot=lambda *a: served.append(a[3]))
    total = sum(float(r.served.sum()) for r in served)
    assert tr.total_bits == pytest.approx(total, rel=1e-12)
    assert tr.bits.shape == (3, np.unique(m.substation).size, len(tr.classes))
    assert np.allclose(tr.bits, tr.bits_by_mode.sum(axis=3))
    # the data queues conserve bits: delivered = arrived − left in the queues
    final = np.asarray(tr.access["metrics"]["backlog_kbit_final"]) * 1e3
    assert tr.total_bits == pytest.approx(tr.access_arrived_bits - final.sum(), rel=1e-5)


def test_requests_carry_the_delivered_volume_and_faults_are_caught(backbone) -> None:  # type: ignore[no-untyped-def]
    _, env = backbone
    tr = delivered_traffic(make_access_policy("matching"), access_config(SMALL), seed=1)
    sites = substation_sites(tr.substations, env.net)
    reqs = to_requests(tr, env.catalog, sites, env.net.control_centers)
    ok = check_conservation(tr, reqs, env.catalog, sites)
    assert ok["max_rel_error"] < 1e-12
    assert offered_bits(reqs, env.catalog) == pytest.approx(tr.total_bits, rel=1e-12)
    assert all(r.src in set(sites.tolist()) and r.src != r.dst for r in reqs)
    assert {env.catalog.names[r.cls] for r in reqs} <= set(tr.classes)
    # planted faults: a lost request, a shortened holding, a request at the wrong site
    with pytest.raises(CouplingError):
        check_conservation(tr, reqs[1:], env.catalog, sites)
    bad = [dataclasses.replace(reqs[0], holding_s=reqs[0].holding_s * 0.9), *reqs[1:]]
    with pytest.raises(CouplingError):
        check_conservation(tr, bad, env.catalog, sites)
    other = next(s for s in range(env.net.n_sites) if s not in set(sites.tolist()))
    moved = [dataclasses.replace(reqs[0], src=other), *reqs[1:]]
    with pytest.raises(CouplingError):
        check_conservation(tr, moved, env.catalog, sites)


def test_coupled_episode_offers_exactly_the_delivered_volume(backbone) -> None:  # type: ignore[no-untyped-def]
    from pcnalloc.baselines import make_policy

    cfg, _ = backbone
    res = run_coupled(
        make_access_policy("matching"), access_config(SMALL), make_policy("ksp-ff"), cfg, seed=2
    )
    b = res["backbone"]
    assert b["access_requests_shown"] == res["requests"] > 0
    assert b["access_offered_mbit"] == pytest.approx(res["delivered"]["mbit_total"], rel=1e-9)
    assert 0.0 <= b["access_carried_mbit"] <= b["access_offered_mbit"] * (1 + 1e-12)
    assert sum(v["offered"] for v in b["per_class"].values()) == res["requests"]
    again = run_coupled(
        make_access_policy("matching"), access_config(SMALL), make_policy("ksp-ff"), cfg, seed=2
    )
    for r in (res, again):
        r["access"].pop("timing")
    assert json.dumps(again, sort_keys=True) == json.dumps(res, sort_keys=True)


def test_the_env_ledger_catches_a_dropped_request(backbone) -> None:  # type: ignore[no-untyped-def]
    cfg, env0 = backbone
    tr = delivered_traffic(make_access_policy("all-plc"), access_config(SMALL), seed=0)
    sites = substation_sites(tr.substations, env0.net)
    reqs = to_requests(tr, env0.catalog, sites, env0.net.control_centers)

    def offered(rs: list) -> float:  # type: ignore[type-arg]
        env = coupled_env(cfg, rs, network=env0.net)
        env.reset(seed=0)
        for _ in range(20_000):
            if env.ledger["shown"] >= len(rs):
                break
            env.step(env.reject_action)
        assert env.ledger["shown"] == len(rs)
        return float(env.ledger["offered_bits"])

    assert offered(reqs) == pytest.approx(tr.total_bits, rel=1e-9)
    planted = offered(reqs[:-1])  # an adapter that loses the last request
    assert planted != pytest.approx(tr.total_bits, rel=1e-9)


def test_site_mapping(backbone) -> None:  # type: ignore[no-untyped-def]
    _, env = backbone
    net = env.net
    # same grid: a substation bus maps to the site that holds it
    bus = net.site_buses[3][0]
    assert substation_sites([bus], net).tolist() == [3]
    # another grid: lowest-voltage sites that are not control centers, in order
    auto = substation_sites([10_001, 10_002], net)
    assert not set(auto.tolist()) & set(net.control_centers)
    assert substation_sites([7, 9], net, CouplingConfig(sites={7: 1, 9: 2})).tolist() == [1, 2]
    with pytest.raises(CouplingError):
        substation_sites([7, 9], net, CouplingConfig(sites={7: 1}))
    with pytest.raises(CouplingError):
        substation_sites([7], net, CouplingConfig(sites={7: 10_000}))


def test_couple_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text("".join(f"{k}: {v}\n" for k, v in SMALL.items()))
    out = tmp_path / "c.json"
    args = ["access", "couple", "--config", str(cfg), "--case", "case14", "--json", str(out)]
    assert main(args) == 0
    res = json.loads(out.read_text())
    assert res["conservation"]["max_rel_error"] < 1e-9
    capsys.readouterr()
    assert main(["access", "couple", "--config", str(cfg), "--case", "atlantis"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
