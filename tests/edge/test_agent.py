"""EdgeAgent: same decisions as the torch student, rule interception, audit, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.baselines import make_policy
from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import EdgeAgent, EdgePolicy, LocalState
from pcnalloc.edge.artifact import ArtifactMismatchError
from pcnalloc.edge.audit import AuditLog, verify
from pcnalloc.edge.engine import RequestContext, build_engine
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate.runner import run_policy
from pcnalloc.export.compile import compile_student

STEPS = 300


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], small_pool_graph_file: Path) -> EnvConfig:
    """The tiny ring with 50 Mb/s links at high load and frequent grid emergencies: pools
    fill, masks bite, emergency priorities change which candidates may pre-empt."""
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.fixture(scope="module")
def student(cfg: EnvConfig) -> torch.nn.Sequential:
    D = PowerCommEnv(cfg, observation="compact").observation_space["compact"].shape[0]
    g = torch.Generator().manual_seed(7)
    m = torch.nn.Sequential(
        torch.nn.Linear(D, 48), torch.nn.ReLU(), torch.nn.Linear(48, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    return m.eval()


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return keys.save_keypair(tmp_path_factory.mktemp("keys"), "edge")


def _rows(cfg: EnvConfig, n: int, seed: int) -> np.ndarray:
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(n):
        out.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    return np.stack(out)


@pytest.fixture(scope="module")
def artifact(
    tmp_path_factory: pytest.TempPathFactory,
    cfg: EnvConfig,
    student: torch.nn.Sequential,
    signer: tuple[Path, Path],
) -> Path:
    out = tmp_path_factory.mktemp("edge") / "artifact"
    rows = _rows(cfg, 200, seed=99)
    compile_student(
        student,
        rows,
        env_config=cfg,
        private_key=signer[0],
        out_dir=out,
        int8=True,
        min_agreement=0,
    )
    return out


@torch.no_grad()
def _torch_logits(m: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    return m(torch.from_numpy(x[None].astype(np.float32))).numpy()[0]


def test_decisions_equal_torch_student(
    cfg: EnvConfig, artifact: Path, student: torch.nn.Sequential, signer: tuple[Path, Path]
) -> None:
    env = PowerCommEnv(cfg, observation="compact")
    agent = EdgeAgent(artifact, signer[1], cfg, network=env.net)
    obs, _ = env.reset(seed=1)
    substituted = emergencies = 0
    for i in range(STEPS):
        d = agent.decide(LocalState.from_env(env))
        np.testing.assert_array_equal(agent.compact, obs["compact"], err_msg=f"state {i}")
        ev = env.current_evaluation
        np.testing.assert_array_equal(agent.last_evaluation.mask_A, ev.mask_A)
        np.testing.assert_array_equal(agent.last_evaluation.needs_preempt_A, ev.needs_preempt_A)
        emergencies += env.current_priority != env.catalog.priority_C[env.current_request.cls]
        z = _torch_logits(student, obs["compact"])
        np.testing.assert_allclose(agent.last_logits, z, atol=1e-5)
        assert d.proposal == int(z.argmax()), f"state {i}"
        masked = int(np.argmax(np.where(obs["action_mask"] > 0, z, -np.inf)))
        assert d.action == masked, f"state {i}"
        assert d.intercepted == (d.action != d.proposal)
        substituted += d.intercepted
        obs, *_, info = env.step(d.action)
        assert info["outcome"] != "refused"
    assert 0 < substituted < STEPS  # the mask really intervened, but not always
    assert emergencies > 0  # some states ran at an emergency setup priority
    lat = agent.latency_us()
    assert lat["total"].shape == (STEPS,) and (lat["model"] > 0).all()


def test_rules_intercept_and_audit_records_every_decision(
    cfg: EnvConfig, artifact: Path, signer: tuple[Path, Path], tmp_path: Path
) -> None:
    env = PowerCommEnv(cfg, observation="compact")
    engine = build_engine(None, env.catalog, trust_threshold=cfg.trust_threshold)
    log = tmp_path / "audit.jsonl"
    n = 120
    with AuditLog(log, private_key=signer[0], checkpoint_every=50) as audit:
        agent = EdgeAgent(artifact, signer[1], cfg, rules=engine, audit=audit)
        env.reset(seed=2)
        intercepted = 0
        for _ in range(n):
            d = agent.decide(LocalState.from_env(env))
            ev = env.current_evaluation
            verdict = engine.check(ev.fields, RequestContext.from_env(env))
            assert not verdict.forbidden_A[d.action]  # never executes a forbidden action
            if d.intercepted:
                intercepted += 1
                assert d.rule_ids and verdict.forbidden_A[d.proposal]
            env.step(d.action)
    assert intercepted > 0
    res = verify(log, signer[1])
    assert res.ok, str(res)
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    decisions = [r["body"] for r in recs if r["type"] == "decision"]
    assert len(decisions) == n
    assert {b["model"] for b in decisions} == {agent.model_sha256}
    assert sum(b["intercepted"] for b in decisions) == intercepted


def test_int8_agent_and_mismatched_config(
    cfg: EnvConfig, artifact: Path, signer: tuple[Path, Path]
) -> None:
    env = PowerCommEnv(cfg, observation="compact")
    agent = EdgeAgent(artifact, signer[1], cfg, precision="int8")
    assert agent.model_sha256 == agent.artifact.manifest["models"]["int8"]["sha256"]
    env.reset(seed=3)
    d = agent.decide(LocalState.from_env(env))
    assert env.current_evaluation.mask_A[d.action]
    other = cfg.model_copy(update={"history": 8})
    with pytest.raises(ArtifactMismatchError, match="history"):
        EdgeAgent(artifact, signer[1], other)


def test_edge_policy_registered_and_faithful(
    cfg: EnvConfig, artifact: Path, student: torch.nn.Sequential, signer: tuple[Path, Path]
) -> None:
    pol = make_policy("edge", artifact_dir=artifact, public_key=signer[1])
    assert isinstance(pol, EdgePolicy) and pol.observation == "compact"
    assert pol.model_bytes == (artifact / "model.onnx").stat().st_size
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=4)
    for _ in range(50):
        z = _torch_logits(student, obs["compact"])
        a = pol.act(obs)
        assert a == int(np.argmax(np.where(obs["action_mask"] > 0, z, -np.inf)))
        obs, *_ = env.step(a)
    out = run_policy(pol, cfg, seed=5, requests=100)
    assert out["policy"] == "edge" and out["metrics"]["executed_hard_violations"] == 0


def test_edge_runtime_never_imports_torch(
    cfg: EnvConfig, artifact: Path, signer: tuple[Path, Path]
) -> None:
    """Import the runtime, verify an artifact and decide on live states, all without torch."""
    code = (
        "import sys, json\n"
        "import pcnalloc.edge, pcnalloc.edge.agent as ag\n"
        "from pcnalloc.config import EnvConfig\n"
        "from pcnalloc.envs import PowerCommEnv\n"
        "cfg = EnvConfig.model_validate(json.loads(sys.argv[1]))\n"
        "env = PowerCommEnv(cfg, observation='compact'); env.reset(seed=0)\n"
        "agent = ag.EdgeAgent(sys.argv[2], sys.argv[3], cfg)\n"
        "for _ in range(20):\n"
        "    env.step(agent.decide(ag.LocalState.from_env(env)).action)\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "assert not bad, bad\n"
        "print('no-torch-ok')\n"
    )
    args = [cfg.model_dump_json(), str(artifact), str(signer[1])]
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "no-torch-ok" in res.stdout, res.stderr[-2000:]
