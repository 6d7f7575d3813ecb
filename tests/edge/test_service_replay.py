"""The service's log is its state: replay equals the live book, restarts resume it exactly."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import AUTH, TOKEN, Clock, compile_random_student

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditError, verify
from pcnalloc.edge.flowbook import ReplayError, read_records, replay
from pcnalloc.edge.service import ServiceConfig, ServiceError, create_app


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, small_pool_graph_file: Path) -> Path:
    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:
        site.pop("region")
    p = tmp_path_factory.mktemp("graphs") / "tiny50one.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], graph: Path) -> EnvConfig:
    """High load with pre-emption, so outcomes carry victims."""
    return make_config(graph, events="calm", traffic={"load": 1.5, "warm_start": False})


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "edge")


@pytest.fixture(scope="module")
def artifact(
    tmp_path_factory: pytest.TempPathFactory, cfg: EnvConfig, signer: tuple[Path, Path]
) -> Path:
    return compile_random_student(tmp_path_factory.mktemp("edge") / "artifact", cfg, signer[0])


def config(artifact: Path, signer: tuple[Path, Path], log: Path, **kw: Any) -> ServiceConfig:
    return ServiceConfig(
        artifact=artifact, public_key=signer[1], audit=log, audit_key=signer[0], **kw
    )


def drive(client: TestClient, clock: Clock, live: Any, n: int, seed: int) -> list[dict]:
    """``n`` random requests (some with client ids), a few early releases; the acknowledged
    responses."""
    rng = np.random.default_rng(seed)
    names, sites = live.catalog.names, live.net.site_names
    acked = []
    for i in range(n):
        clock.t += float(rng.exponential(1.5))
        src = live.region_sites[int(rng.integers(len(live.region_sites)))]
        dst = sites[int(rng.integers(len(sites)))]
        if dst == src:
            continue
        b = {
            "service_class": names[int(rng.integers(len(names)))],
            "src": src,
            "dst": dst,
            "holding_s": float(rng.exponential(90.0)) + 1.0,
        }
        if rng.random() < 0.2:
            b["request_id"] = f"c{seed}-{i}"
        r = client.post("/v1/allocate", headers=AUTH, json=b)
        assert r.status_code == 200, r.text
        acked.append(r.json())
        if live.flow_of and rng.random() < 0.1:
            fid = sorted(live.flow_of)[int(rng.integers(len(live.flow_of)))]
            assert client.delete(f"/v1/flows/{fid}", headers=AUTH).status_code == 200
    return acked


def replayed(recs: list[dict], live: Any) -> dict | None:
    try:
        return replay(recs, live.net, live.catalog, live.cfg.history).snapshot()
    except ReplayError:
        return None


def test_replay_rebuilds_live_state_and_dropped_records_show(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    clock = Clock()
    with TestClient(create_app(config(artifact, signer, log), TOKEN, clock=clock)) as client:
        live = client.app.state.live  # type: ignore[attr-defined]
        drive(client, clock, live, 400, seed=1)
        live.expire(clock.t)
        c = live.counts
        assert c["preempted"] > 0 and c["expired"] > 0 and c["released"] > 0, dict(c)
        assert c["accepted"] > 0 and c["rejected"] + c["blocked"] > 0
        live.state.check_invariants()
        snap = live.snapshot()
        recs = read_records(log)
        assert replayed(recs, live) == snap
        kinds = [r["type"] for r in recs]
        assert kinds.count("decision") == kinds.count("outcome") == c["decisions"]
        # every outcome names its intent and carries what the issue lists
        out = next(r for r in recs if r["type"] == "outcome" and r["body"]["preempted"])
        assert recs[out["body"]["decision_seq"]]["type"] == "decision"
        assert {"request_id", "outcome", "action", "grant", "reason", "flow"} <= set(out["body"])
        assert out["body"]["flow"]["path"] and out["body"]["flow"]["links"]
        # planted faults: each dropped record makes the replay differ
        for kind in ("release", "expiry", "outcome"):
            i = next(
                j
                for j, r in enumerate(recs)
                if r["type"] == kind and (kind != "outcome" or r["body"]["flow"])
            )
            assert replayed(recs[:i] + recs[i + 1 :], live) != snap, kind
    assert verify(log, signer[1]).ok


def test_restart_resumes_flows_ids_and_history(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    clock = Clock()
    app = create_app(config(artifact, signer, log), TOKEN, clock=clock)
    client = TestClient(app)
    live = app.state.live
    acked = drive(client, clock, live, 150, seed=2)
    before = live.snapshot()
    assert before["flows"], "nothing to resume"
    live.agent.audit.close(checkpoint=False)  # as a crash leaves it: the tail unsigned
    assert not verify(log, signer[1]).ok and verify(log, signer[1], allow_unsigned_tail=True).ok

    app2 = create_app(config(artifact, signer, log), TOKEN, clock=clock)
    live2 = app2.state.live
    assert live2.snapshot() == before  # same flows, pools, ids, history, counters
    restart = [r for r in read_records(log) if r["type"] == "restart"]
    assert len(restart) == 1 and restart[0]["body"]["active_flows"] == len(before["ids"])
    with TestClient(app2) as client2:
        got = client2.post(
            "/v1/allocate",
            headers=AUTH,
            json={"service_class": "scada", "src": "B", "dst": "A", "holding_s": 5.0},
        ).json()
        assert got["request_id"] == f"r0-{before['n_requests']}"  # ids continue
        more = drive(client2, clock, live2, 100, seed=3)
        assert live2.snapshot() == replayed(read_records(log), live2)
        flows = client2.get("/v1/flows", headers=AUTH).json()
        assert flows["pools_sha256"] == live2.snapshot()["pools_sha256"]
    assert verify(log, signer[1]).ok  # shutdown signed the tail
    # every acknowledged decision is in the log, with the answer the client got
    outcomes = {(r["body"]["n"]): r["body"] for r in read_records(log) if r["type"] == "outcome"}
    by_id = {o["request_id"]: o for o in outcomes.values()}
    for a in acked + more + [got]:
        o = by_id.get(a["request_id"]) if a["flow_id"] is None else by_id[a["flow_id"]]
        assert o is not None and o["outcome"] == a["outcome"] and o["action"] == a["action"]


def test_torn_tail_blocks_start_until_repaired(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    clock = Clock()
    with TestClient(create_app(config(artifact, signer, log), TOKEN, clock=clock)) as client:
        live = client.app.state.live  # type: ignore[attr-defined]
        drive(client, clock, live, 20, seed=4)
        snap = live.snapshot()
    with open(log, "ab") as fh:
        fh.write(b'{"body": {"half')
    with pytest.raises(AuditError, match="pcnalloc audit repair"):
        create_app(config(artifact, signer, log), TOKEN, clock=clock)
    from pcnalloc.edge.audit_repair import repair
    from pcnalloc.edge.trusted_keys import pinned_keys

    assert repair(log, pinned_keys(signer[1]), private_key=signer[0]).repaired
    live = create_app(config(artifact, signer, log), TOKEN, clock=clock).state.live
    assert live.snapshot() == snap


def test_edited_log_refuses_to_resume(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    clock = Clock()
    with TestClient(create_app(config(artifact, signer, log), TOKEN, clock=clock)) as client:
        drive(client, clock, client.app.state.live, 30, seed=5)  # type: ignore[attr-defined]
    lines = log.read_bytes().splitlines(keepends=True)
    i = next(j for j, ln in enumerate(lines) if b'"type":"outcome"' in ln and b'"kbps"' in ln)
    lines[i] = lines[i].replace(b'"kbps":', b'"kbps":1', 1)
    log.write_bytes(b"".join(lines))
    with pytest.raises(ServiceError, match="does not verify"):
        create_app(config(artifact, signer, log), TOKEN, clock=clock)


def test_audit_without_key_needs_integrity_only(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    sc = ServiceConfig(artifact=artifact, public_key=signer[1], audit=log)
    with pytest.raises(ServiceError, match="--integrity-only"):
        create_app(sc, TOKEN)
    assert not log.exists()
    clock = Clock()
    sc = sc.model_copy(update={"integrity_only": True})
    with TestClient(create_app(sc, TOKEN, clock=clock)) as client:
        drive(client, clock, client.app.state.live, 30, seed=6)  # type: ignore[attr-defined]
        snap = client.app.state.live.snapshot()  # type: ignore[attr-defined]
    live = create_app(sc, TOKEN, clock=clock).state.live  # resumes by the chain alone
    assert live.snapshot() == snap


def test_client_ids_and_automatic_ids_share_one_namespace(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    clock = Clock()
    app = create_app(config(artifact, signer, tmp_path / "a.jsonl"), TOKEN, clock=clock)
    with TestClient(app) as client:
        live = app.state.live
        b = {"service_class": "scada", "src": "B", "dst": "A", "holding_s": 600.0}
        taken = client.post("/v1/allocate", headers=AUTH, json={**b, "request_id": "r0-1"})
        assert taken.json()["flow_id"] == "r0-1"
        auto = client.post("/v1/allocate", headers=AUTH, json=b).json()
        assert auto["flow_id"] == "r0-1.1"  # the automatic id skips the client's
        dup = client.post("/v1/allocate", headers=AUTH, json={**b, "request_id": "r0-1.1"})
        assert dup.status_code == 409
        for fid in ("r0-1", "r0-1.1"):
            assert client.delete(f"/v1/flows/{fid}", headers=AUTH).status_code == 200
        assert live.state.used_ES1.sum() == 0 and not live.flow_of
