"""Fuzz harness of the edge service: generated ``/v1/allocate`` bodies through the real app
(in-process, FastAPI's TestClient).

Each body is valid, or a valid one mutated at one place (a nasty value, a deleted or unknown
field, another document type) and sometimes corrupted as bytes (truncated, not UTF-8). The
oracle: a malformed body gets a 4xx whose ``reason`` is one line (never a 500 or a trace); a
valid body gets 200; an unknown field or bytes that are not UTF-8 are always refused.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent / "edge"))
from service_helpers import AUTH, TOKEN, Clock, compile_random_student

from pcnalloc.config import EnvConfig
from test_fuzz_cli import NASTY, corrupt, mutate

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

SEEN: Counter[str] = Counter()
SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "derandomize": True,
    "phases": [Phase.explicit, Phase.generate],
}
_ids = itertools.count()
assert NASTY  # the same nasty values as the CLI harness


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    make_config: Callable[..., EnvConfig],
    small_pool_graph_file: Path,
) -> Iterator[TestClient]:
    from pcnalloc.edge import keys
    from pcnalloc.edge.service import ServiceConfig, create_app

    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:  # one region (Louvain on 6 sites): every site may send
        site.pop("region")
    graph = tmp_path_factory.mktemp("graphs") / "fuzz_one_region.json"
    graph.write_text(json.dumps(data))
    cfg = make_config(graph, events="calm", traffic={"warm_start": False})
    priv, pub = keys.save_keypair(tmp_path_factory.mktemp("keys"), "fuzz")
    art = compile_random_student(tmp_path_factory.mktemp("edge") / "artifact", cfg, priv)
    app = create_app(ServiceConfig(artifact=art, public_key=pub), TOKEN, clock=Clock())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    print(f"\nservice fuzz corpus: {sum(SEEN.values())} bodies ({dict(sorted(SEEN.items()))})")


def body(data: st.DataObject) -> dict[str, Any]:
    src = data.draw(st.sampled_from(["B", "C", "E", "F"]))
    return {
        "service_class": data.draw(st.sampled_from(["scada", "pmu_wams", "office", "metering"])),
        "src": src,
        "dst": data.draw(st.sampled_from(["A", "D"])),
        "holding_s": data.draw(st.floats(1.0, 3600.0)),
        "request_id": f"fz-{next(_ids)}",
    }


def case(data: st.DataObject, client: TestClient) -> None:
    valid = body(data)
    expect = "ok"
    raw = json.dumps(valid).encode()
    if not data.draw(st.booleans()):
        doc, surely = mutate(data, valid)
        raw, how = corrupt(data, json.dumps(doc).encode())
        # a cut JSON object never parses; a cut bare number or string might
        cut = how == "truncated" and isinstance(doc, dict)
        expect = "error" if (surely and how != "truncated") or how == "utf8" or cut else "either"
    r = client.post(
        "/v1/allocate", content=raw, headers={**AUTH, "Content-Type": "application/json"}
    )
    SEEN[f"HTTP {r.status_code}"] += 1
    assert r.status_code < 500, (r.status_code, r.text, raw[:500])
    if r.status_code != 200:
        reason = r.json()["reason"]
        assert isinstance(reason, str) and "\n" not in reason and "Traceback" not in reason
    if expect == "ok":
        assert r.status_code == 200, (r.text, raw)
    elif expect == "error":
        assert 400 <= r.status_code < 500, (r.status_code, r.text, raw[:500])


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_fuzz_allocate_bodies(data, client) -> None:
    case(data, client)


@pytest.mark.slow
@settings(max_examples=1200, **SETTINGS)
@given(data=st.data())
def test_fuzz_allocate_bodies_large(data, client) -> None:
    case(data, client)
