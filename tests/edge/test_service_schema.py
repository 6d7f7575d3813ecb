"""Schemathesis against the service's OpenAPI schema (in-process ASGI): never a 5xx.

Positive and negative cases (bounded examples, deterministic) for every operation, sent with
the bearer token; a second run sends none and must see only 401s.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.service import ServiceConfig, create_app
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    ignored_auth,
    status_code_conformance,
)

TOKEN = "schema-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_EXAMPLES = 120
"""Examples per generation mode over all operations (about 5 s each on 2 cores)."""


@pytest.fixture(scope="module")
def app(
    tmp_path_factory: pytest.TempPathFactory,
    make_config: Callable[..., EnvConfig],
    small_pool_graph_file: Path,
) -> Any:
    """The service of region 0 of the two-region tiny network, with a random MLP student."""
    cfg = make_config(small_pool_graph_file, events="calm", traffic={"warm_start": False})
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=3)
    rows = [obs["compact"]]
    for _ in range(63):
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
        rows.append(obs["compact"])
    g = torch.Generator().manual_seed(3)
    m = torch.nn.Sequential(
        torch.nn.Linear(rows[0].shape[0], 16), torch.nn.ReLU(), torch.nn.Linear(16, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    d = tmp_path_factory.mktemp("schema")
    priv, pub = keys.save_keypair(d / "keys", "edge")
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=d / "a")
    return create_app(ServiceConfig(artifact=d / "a", public_key=pub), TOKEN)


@pytest.fixture(scope="module")
def api_schema(app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def _run(schema: Any, mode: GenerationMode, test: Callable[[Any], None]) -> None:
    """Run ``test`` on bounded, deterministic cases of every operation."""
    run = settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(case=schema.as_strategy(generation_mode=mode))(test))
    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error(api_schema: Any, mode: GenerationMode) -> None:
    """Valid and invalid requests alike get a decision or a documented 4xx with a reason."""
    seen: dict[int, int] = {}

    def check(case: Any) -> None:
        r = case.call(headers=AUTH)
        case.validate_response(r, checks=[not_a_server_error, status_code_conformance])
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        if r.status_code >= 400:
            assert json.loads(r.text)["reason"]

    _run(api_schema, mode, check)
    assert all(code < 500 for code in seen)
    if mode == GenerationMode.POSITIVE:
        assert seen.get(200, 0) > 0  # real decisions were made, not just refusals
    else:
        assert seen.get(422, 0) > 0


def test_without_token_only_401(api_schema: Any) -> None:
    """No operation but health answers without the bearer token."""

    def check(case: Any) -> None:
        hdr = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers = hdr
        r = case.call()
        case.validate_response(r, checks=[not_a_server_error, ignored_auth])
        assert r.status_code == (200 if case.path == "/v1/health" else 401)

    _run(api_schema, GenerationMode.POSITIVE, check)
