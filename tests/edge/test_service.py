"""Edge allocation service: auth, 4xx reasons, parity with the in-process agent, release."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from service_helpers import AUTH, TOKEN, Clock, compile_random_student

from pcnalloc.cli import main
from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.edge.artifact import ArtifactError
from pcnalloc.edge.engine import build_engine
from pcnalloc.edge.service import (
    TOKEN_ENV,
    ServiceConfig,
    ServiceError,
    create_app,
    read_token,
)
from pcnalloc.envs import PowerCommEnv

STEPS = 250


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, small_pool_graph_file: Path) -> Path:
    """The tiny ring with 50 Mb/s links as one region (Louvain on 6 sites gives one)."""
    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:
        site.pop("region")
    p = tmp_path_factory.mktemp("graphs") / "tiny50one.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], graph: Path) -> EnvConfig:
    """High load, no grid events, no warm start, no pre-emption: the env's state is exactly
    what the decided requests reserve, so a service fed the same requests must match it."""
    return make_config(
        graph, events="calm", traffic={"load": 1.5, "warm_start": False}, preemption=False
    )


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "edge")


@pytest.fixture(scope="module")
def artifact(
    tmp_path_factory: pytest.TempPathFactory, cfg: EnvConfig, signer: tuple[Path, Path]
) -> Path:
    """A random 2-layer MLP student compiled and signed."""
    return compile_random_student(tmp_path_factory.mktemp("edge") / "artifact", cfg, signer[0])


@pytest.fixture
def service(artifact: Path, signer: tuple[Path, Path]) -> Iterator[tuple[TestClient, Clock, Any]]:
    clock = Clock()
    app = create_app(ServiceConfig(artifact=artifact, public_key=signer[1]), TOKEN, clock=clock)
    with TestClient(app) as client:
        yield client, clock, app.state.live


def body(**over: Any) -> dict[str, Any]:
    return {"service_class": "scada", "src": "B", "dst": "A", "holding_s": 60.0, **over}


# ---------------------------------------------------------------------------- auth
def test_missing_or_wrong_token_is_401(service: tuple[TestClient, Clock, Any]) -> None:
    client, _, live = service
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": "Bearer wrong-token-0123456789abcdef"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": "Bearer"},
    ]
    for h in bad_headers:
        for method, url, kw in (
            ("POST", "/v1/allocate", {"json": body()}),
            ("POST", "/v1/allocate", {"content": b"{not json"}),  # auth before parsing
            ("GET", "/v1/metrics", {}),
            ("DELETE", "/v1/flows/x", {}),
        ):
            r = client.request(method, url, headers=h, **kw)
            assert r.status_code == 401, (h, url)
            assert r.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer" in r.json()["reason"]
    assert live.counts["decisions"] == 0  # nothing was decided
    assert client.get("/v1/health").status_code == 200  # open
    m = client.get("/v1/metrics", headers=AUTH).json()
    assert m["unauthorized"] == len(bad_headers) * 4


def test_weak_token_and_token_sources(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    sc = ServiceConfig(artifact=artifact, public_key=signer[1])
    for weak in ("short", "has a space in it 0123456789"):
        with pytest.raises(ServiceError, match="at least 16 printable ASCII"):
            create_app(sc, weak)
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert read_token(f) == TOKEN
    assert read_token(None, {TOKEN_ENV: "from-env"}) == "from-env"
    with pytest.raises(ServiceError, match=TOKEN_ENV):
        read_token(None, {})
    with pytest.raises(ServiceError, match="cannot be read"):
        read_token(tmp_path / "missing")


# ---------------------------------------------------------------------------- 4xx
@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "body"),
        (b"null", "body"),
        (json.dumps(body(service_class="videoo")), "'videoo' is not accepted; accepted: "),
        (json.dumps(body(src="Z")), "src: 'Z' is not accepted; accepted: A, B"),
        (json.dumps(body(dst="nowhere")), "dst: 'nowhere' is not accepted"),
        (json.dumps(body(dst="B")), "src and dst are both 'B'"),
        (json.dumps(body(holding_s="60")), "holding_s"),
        (json.dumps(body(holding_s=True)), "holding_s"),
        (json.dumps(body(holding_s=-1)), "holding_s: Input should be greater than 0"),
        (json.dumps(body(holding_s=1e12)), "holding_s"),
        (b'{"service_class": "scada", "src": "B", "dst": "A", "holding_s": NaN}', "holding_s"),
        (json.dumps(body(service_class=3)), "service_class"),
        (json.dumps(body(request_id="has space")), "request_id"),
        (json.dumps({"src": "B", "dst": "A", "holding_s": 1}), "service_class: missing"),
        (json.dumps(body(colour="red")), "colour: unknown field; accepted: service_class"),
    ],
)
def test_malformed_bodies_get_422_with_reason(
    service: tuple[TestClient, Clock, Any], payload: bytes | str, needle: str
) -> None:
    client, _, live = service
    h = {**AUTH, "Content-Type": "application/json"}
    r = client.post("/v1/allocate", content=payload, headers=h)
    assert r.status_code == 422, r.text
    reason = r.json()["reason"]
    assert needle in reason and "\n" not in reason
    assert live.counts["decisions"] == 0 and live.counts["invalid"] == 1


def test_oversized_body_and_unknown_routes(service: tuple[TestClient, Clock, Any]) -> None:
    client, _, _ = service
    r = client.post("/v1/allocate", content=b" " * 70_000, headers=AUTH)
    assert r.status_code == 413 and "bytes" in r.json()["reason"]
    assert client.get("/v1/nothing", headers=AUTH).status_code == 404
    assert client.get("/v1/nothing").status_code == 401  # closed by default
    assert client.get("/v1/allocate", headers=AUTH).status_code == 405
    assert client.get("/openapi.json").status_code == 200  # open


def test_internal_error_is_json_and_logged(
    service: tuple[TestClient, Clock, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _, live = service

    def boom(*_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(live, "allocate", boom)
    quiet = TestClient(client.app, raise_server_exceptions=False)
    r = quiet.post("/v1/allocate", headers=AUTH, json=body())
    assert r.status_code == 500 and r.json() == {"reason": "internal error; see the service log"}


# ---------------------------------------------------------------------------- decisions
def test_decisions_equal_in_process_agent(
    cfg: EnvConfig, artifact: Path, signer: tuple[Path, Path], service: Any
) -> None:
    """The env drives the requests; the in-process agent decides on the env's state, the
    service on its own: actions, rules, routes and the final pools must agree."""
    client, clock, live = service
    env = PowerCommEnv(cfg, observation="compact")
    engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
    agent = EdgeAgent(artifact, signer[1], cfg, network=env.net, rules=engine)
    names = env.net.site_names
    env.reset(seed=5)
    seen: dict[str, int] = {}
    for i in range(STEPS):
        req = env.current_request
        d = agent.decide(LocalState.from_env(env))
        clock.t = env.now
        r = client.post(
            "/v1/allocate",
            headers=AUTH,
            json={
                "service_class": env.catalog.names[req.cls],
                "src": names[req.src],
                "dst": names[req.dst],
                "holding_s": req.holding_s,
            },
        )
        assert r.status_code == 200, r.text
        got = r.json()
        _, _, _, _, info = env.step(d.action)
        assert (got["action"], got["proposal"]) == (d.action, d.proposal), f"request {i}"
        assert got["intercepted"] == d.intercepted and got["rule_ids"] == list(d.rule_ids)
        assert got["outcome"] == info["outcome"], f"request {i}"
        assert got["grant"] == pytest.approx(info["grant"])
        if got["outcome"] == "accepted":
            k = d.action // cfg.grant_levels
            cs = env.current_candidates  # already the next request's: compare via latency
            assert got["latency_ms"] == pytest.approx(info["latency_ms"])
            assert got["path"][0] == names[req.src] and got["path"][-1] == names[req.dst]
            assert got["granted_mbps"] == pytest.approx(info["kbps"] / 1000.0)
            del k, cs
        seen[got["outcome"]] = seen.get(got["outcome"], 0) + 1
        seen["intercepted"] = seen.get("intercepted", 0) + got["intercepted"]
    # the run was not trivial: pools filled, flows left, the rule engine intervened
    assert seen.get("accepted", 0) > 0 and seen.get("rejected", 0) + seen.get("blocked", 0) > 0
    assert 0 < seen["intercepted"] < STEPS
    live.expire(env.now)
    np.testing.assert_array_equal(live.state.used_ESP1, env.state.used_ESP1)
    assert live.counts["expired"] > 0
    live.state.check_invariants()
    m = client.get("/v1/metrics", headers=AUTH).json()
    assert m["decisions"] == STEPS and m["intercepted"] == seen["intercepted"]
    assert m["decision_latency_us"]["p99"] >= m["decision_latency_us"]["p50"] > 0


def test_release_expiry_and_duplicate_ids(service: tuple[TestClient, Clock, Any]) -> None:
    client, clock, live = service
    r = client.post("/v1/allocate", headers=AUTH, json=body(request_id="sdn-1"))
    got = r.json()
    assert got["outcome"] == "accepted" and got["flow_id"] == "sdn-1"
    assert got["expires_at_s"] == pytest.approx(clock.t + 60.0)
    assert live.state.used_ES1.sum() > 0
    dup = client.post("/v1/allocate", headers=AUTH, json=body(request_id="sdn-1"))
    assert dup.status_code == 409 and "sdn-1" in dup.json()["reason"]
    rel = client.delete("/v1/flows/sdn-1", headers=AUTH)
    assert rel.status_code == 200 and rel.json()["service_class"] == "scada"
    assert live.state.used_ES1.sum() == 0
    again = client.delete("/v1/flows/sdn-1", headers=AUTH)
    assert again.status_code == 404 and "not active" in again.json()["reason"]
    # expiry on the service clock; an assigned id when none is given
    got = client.post("/v1/allocate", headers=AUTH, json=body(holding_s=10.0)).json()
    assert got["flow_id"] == got["request_id"] == "r0-1"
    clock.t += 9.0
    assert client.get("/v1/metrics", headers=AUTH).json()["active_flows"] == 1
    clock.t += 1.0
    m = client.get("/v1/metrics", headers=AUTH).json()
    assert (m["active_flows"], m["expired"], m["released"]) == (0, 1, 1)
    assert live.state.used_ES1.sum() == 0
    assert client.delete(f"/v1/flows/{got['flow_id']}", headers=AUTH).status_code == 404


def test_health_and_openapi(service: tuple[TestClient, Clock, Any], artifact: Path) -> None:
    client, _, _ = service
    h = client.get("/v1/health").json()
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert h["model_sha256"] == manifest["models"]["fp32"]["sha256"]
    assert h["region"] == 0 and h["region_sites"] == 6 and h["uptime_s"] >= 0
    spec = client.get("/openapi.json").json()
    assert {"/v1/allocate", "/v1/health", "/v1/metrics", "/v1/flows/{flow_id}"} <= set(
        spec["paths"]
    )
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    req = spec["components"]["schemas"]["AllocationRequest"]["properties"]
    assert "scada" in req["service_class"]["enum"] and req["service_class"]["description"]


# ---------------------------------------------------------------------------- start-up
def test_region_restricts_sources(
    artifact: Path, signer: tuple[Path, Path], small_pool_graph_file: Path
) -> None:
    """On the two-region tiny graph the region-1 service refuses a region-0 source."""
    two = str(small_pool_graph_file)
    sc = ServiceConfig(artifact=artifact, public_key=signer[1], region=1, case=two)
    client = TestClient(create_app(sc, TOKEN, clock=Clock()))
    live = client.app.state.live  # type: ignore[attr-defined]
    assert live.region_sites == ["D", "E", "F"]
    r = client.post("/v1/allocate", headers=AUTH, json=body(src="B", dst="A"))
    assert r.status_code == 422 and "'B' is not accepted; accepted: D, E, F" in r.json()["reason"]
    ok = client.post("/v1/allocate", headers=AUTH, json=body(src="E", dst="A"))
    assert ok.status_code == 200 and ok.json()["request_id"] == "r1-0"
    with pytest.raises(ServiceError, match=r"region 2 .* accepted: 0\.\.1"):
        create_app(sc.model_copy(update={"region": 2}), TOKEN)


def test_tampered_artifact_refuses_to_start(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = Path(shutil.copytree(artifact, tmp_path / "artifact"))
    model = bytearray((bad / "model.onnx").read_bytes())
    model[len(model) // 2] ^= 0x01
    (bad / "model.onnx").write_bytes(bytes(model))
    with pytest.raises(ArtifactError, match="tampered"):
        create_app(ServiceConfig(artifact=bad, public_key=signer[1]), TOKEN)
    tok = tmp_path / "token"
    tok.write_text(TOKEN)
    argv = ["serve", "--artifact", str(bad), "--public-key", str(signer[1])]
    argv += ["--region", "0", "--port", "1", "--token-file", str(tok)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model.onnx: sha256") and "\n" not in err
    _, other = keys.save_keypair(tmp_path / "k", "other")  # signed by another key
    argv[4] = str(other)
    assert main(argv) == 2
    assert "wrong key" in capsys.readouterr().err


def test_audit_log_records_decisions_and_releases(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    from pcnalloc.edge.audit import verify

    log = tmp_path / "audit.jsonl"
    sc = ServiceConfig(artifact=artifact, public_key=signer[1], audit=log, audit_key=signer[0])
    with TestClient(create_app(sc, TOKEN, clock=Clock())) as client:
        for i in range(5):
            client.post("/v1/allocate", headers=AUTH, json=body(request_id=f"f{i}"))
        assert client.delete("/v1/flows/f0", headers=AUTH).status_code == 200
    res = verify(log, signer[1])  # closed (and checkpointed) at shutdown
    assert res.ok and res.unsigned_tail == 0, str(res)
    types = [json.loads(x)["type"] for x in log.read_text().splitlines()]
    assert types.count("decision") == 5 and types.count("release") == 1


def test_chunked_body_over_the_cap_is_413(service: tuple[TestClient, Clock, Any]) -> None:
    client, _, live = service

    def chunks(n: int, size: int = 8192) -> Iterator[bytes]:
        for _ in range(n):
            yield b" " * size

    r = client.post("/v1/allocate", content=chunks(25), headers=AUTH)  # 200 KB, no length
    assert r.status_code == 413 and "bytes" in r.json()["reason"]
    assert live.counts["decisions"] == 0
    ok = client.post(
        "/v1/allocate",
        content=(x for x in [json.dumps(body()).encode()]),  # chunked, under the cap
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert ok.status_code == 200 and ok.json()["outcome"] == "accepted"


@pytest.mark.parametrize("tick_s", [0.05, 1000.0])
def test_idle_tick_signs_the_tail_at_the_cadence(
    artifact: Path, signer: tuple[Path, Path], tmp_path: Path, tick_s: float
) -> None:
    """The idle task signs the tail once the log's time cadence is due; planted fault: with
    no tick in time, the tail of the still-open log stays unsigned."""
    import time

    from pcnalloc.edge.audit import AuditLog, verify
    from pcnalloc.edge.service import build_agent

    log = tmp_path / "audit.jsonl"
    agent = build_agent(ServiceConfig(artifact=artifact, public_key=signer[1]))
    agent.audit = AuditLog(log, private_key=signer[0], checkpoint_interval_s=0.2)
    with TestClient(create_app(agent, TOKEN, clock=Clock(), tick_s=tick_s)) as client:
        assert client.post("/v1/allocate", headers=AUTH, json=body()).status_code == 200
        time.sleep(0.6)
        res = verify(log, signer[1])  # strict: no unsigned tail
        assert res.ok == (tick_s < 1), str(res)
