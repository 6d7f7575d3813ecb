"""The service's Prometheus metrics (same numbers as the JSON) and its CDN-free API docs."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys, service_docs
from pcnalloc.edge.service import ServiceConfig, create_app
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student

TOKEN = "docs-metrics-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SCRAPER = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*"
"""The Accept header Prometheus sends when it scrapes."""


@pytest.fixture(scope="module")
def artifact(
    tmp_path_factory: pytest.TempPathFactory,
    make_config: Callable[..., EnvConfig],
    small_pool_graph_file: Path,
) -> tuple[Path, Path]:
    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:
        site.pop("region")
    graph = tmp_path_factory.mktemp("graphs") / "ring_one_region.json"
    graph.write_text(json.dumps(data))
    cfg = make_config(graph, events="calm", traffic={"warm_start": False})
    priv, pub = keys.save_keypair(tmp_path_factory.mktemp("keys"), "edge")
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=1)
    rows = []
    for _ in range(40):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(rows[0].shape[0], cfg.n_actions))
    m.input_key = "compact"
    out = tmp_path_factory.mktemp("edge") / "artifact"
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=out)
    return out, pub


def _client(artifact: tuple[Path, Path]) -> TestClient:
    sc = ServiceConfig(artifact=artifact[0], public_key=artifact[1])
    return TestClient(create_app(sc, TOKEN))


@pytest.fixture
def client(artifact: tuple[Path, Path]) -> Iterator[TestClient]:
    with _client(artifact) as c:
        yield c


def _allocate(client: TestClient, n: int) -> None:
    for i in range(n):
        body = {"service_class": "scada", "src": "B", "dst": "ACDEF"[i % 5], "holding_s": 600.0}
        assert client.post("/v1/allocate", json=body, headers=AUTH).status_code == 200


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


# ---------------------------------------------------------------------------- Prometheus
def test_prometheus_text_carries_the_json_numbers(client: TestClient) -> None:
    pytest.importorskip("prometheus_client")
    _allocate(client, 7)
    js = client.get("/v1/metrics", headers=AUTH).json()
    r = client.get("/v1/metrics/prometheus", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = _samples(r.text)
    assert got[("pcnalloc_decisions_total", ())] == js["decisions"] == 7
    for outcome, n in js["outcomes"].items():
        assert got[("pcnalloc_outcomes_total", (("outcome", outcome),))] == n
    assert got[("pcnalloc_active_flows", ())] == js["active_flows"]
    for sl, u in js["max_utilisation"].items():
        assert got[("pcnalloc_max_link_utilisation_ratio", (("slice", sl),))] == pytest.approx(u)
    p50 = got[("pcnalloc_decision_latency_seconds", (("quantile", "0.5"),))]
    assert p50 == pytest.approx(js["decision_latency_us"]["p50"] * 1e-6, rel=0.5)
    info = [k for k in got if k[0] == "pcnalloc_service_info"]
    network = client.get("/v1/health").json()["network"]
    assert len(info) == 1 and ("network", network) in info[0][1]


def test_a_scraper_gets_prometheus_on_v1_metrics_and_others_json(client: TestClient) -> None:
    pytest.importorskip("prometheus_client")
    scraped = client.get("/v1/metrics", headers={**AUTH, "Accept": SCRAPER})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    assert "pcnalloc_decisions_total" in scraped.text
    for accept in ("*/*", "application/json", "text/html,application/json;q=0.9", None):
        h = {**AUTH, **({"Accept": accept} if accept else {})}
        assert client.get("/v1/metrics", headers=h).json()["decisions"] == 0


def test_an_openmetrics_client_gets_openmetrics_with_the_same_numbers(client: TestClient) -> None:
    """Prometheus names OpenMetrics first in its Accept header: it gets OpenMetrics 1.0 (``# EOF``
    terminated, parsed by the strict OpenMetrics parser); a client naming only text/plain gets
    the classic format. Planted fault: the classic text fails the OpenMetrics parser."""
    pytest.importorskip("prometheus_client")
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

    _allocate(client, 3)
    js = client.get("/v1/metrics", headers=AUTH).json()
    for path in ("/v1/metrics", "/v1/metrics/prometheus"):
        r = client.get(path, headers={**AUTH, "Accept": SCRAPER})
        assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert r.text.endswith("# EOF\n")
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in om_parse(r.text)
            for s in fam.samples
        }
        assert got[("pcnalloc_decisions_total", ())] == js["decisions"] == 3
        for outcome, n in js["outcomes"].items():
            assert got[("pcnalloc_outcomes_total", (("outcome", outcome),))] == n
        assert got[("pcnalloc_active_flows", ())] == js["active_flows"]
    plain = client.get("/v1/metrics", headers={**AUTH, "Accept": "text/plain;version=0.0.4"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text
    assert _samples(plain.text)[("pcnalloc_decisions_total", ())] == 3
    with pytest.raises(ValueError):  # the classic text is not OpenMetrics
        list(om_parse(plain.text))


def test_the_token_still_guards_both_formats(client: TestClient) -> None:
    """Planted fault for the rewrite: were it to skip the token check, these would be 200."""
    for path, accept in (("/v1/metrics", SCRAPER), ("/v1/metrics/prometheus", "*/*")):
        r = client.get(path, headers={"Accept": accept})
        assert r.status_code == 401, path
        r = client.get(path, headers={"Accept": accept, "Authorization": "Bearer wrong-token-xx"})
        assert r.status_code == 401, path


def test_without_prometheus_client_json_is_unchanged(
    artifact: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with _client(artifact) as c:
        assert c.get("/v1/metrics", headers={**AUTH, "Accept": SCRAPER}).json()["decisions"] == 0
        assert c.get("/v1/metrics/prometheus", headers=AUTH).status_code == 404
        assert "/v1/metrics/prometheus" not in c.get("/openapi.json").json()["paths"]


def test_schema_lists_the_prometheus_route(client: TestClient) -> None:
    pytest.importorskip("prometheus_client")
    op = client.get("/openapi.json").json()["paths"]["/v1/metrics/prometheus"]["get"]
    assert {"text/plain", "application/openmetrics-text"} <= set(op["responses"]["200"]["content"])


# ---------------------------------------------------------------------------- offline docs
_URL = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""")


def _external(html: str) -> list[str]:
    return re.findall(r"https?://[^\s\"'<>)]+", html)


def test_fastapis_default_docs_page_would_need_a_cdn() -> None:
    """Planted fault for the check below: the stock page loads its JS from a CDN."""
    with TestClient(FastAPI()) as c:
        assert any("cdn" in u for u in _external(c.get("/docs").text))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_and_their_assets_come_from_the_service(client: TestClient, page: str) -> None:
    pytest.importorskip("fastapi_offline")
    r = client.get(page)  # no token: the pages describe the API, never its data
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert _external(r.text) == []
    refs = [u for u in _URL.findall(r.text) if not u.endswith(".json")]
    assert any(u.endswith(".js") for u in refs)
    for url in refs:
        a = client.get(url)
        assert a.status_code == 200 and len(a.content) > 1000, url
    assert client.get("/openapi.json").status_code == 200


def test_asset_routes_take_no_parameter(client: TestClient) -> None:
    pytest.importorskip("fastapi_offline")
    plain = client.get("/docs/swagger-ui.css").content
    assert client.get("/docs/swagger-ui.css?file=/etc/passwd&_file=/etc/passwd").content == plain
    assert client.get("/docs/../v1/metrics").status_code in (401, 404)


def test_without_the_assets_the_pages_say_which_extra(
    artifact: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_docs, "asset_folder", lambda: None)
    with _client(artifact) as c:
        for page in ("/docs", "/redoc"):
            text = c.get(page).text
            assert "install pcnalloc[edge]" in text and _external(text) == []
        assert c.get("/docs/swagger-ui-bundle.js").status_code == 404
