"""The compiled MLP runtime: same logits (within 1e-5) and decisions as ONNX Runtime.

Planted faults: a reference that disagrees, and a model that is not a plain MLP chain, are
refused when the runtime is built.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.distill import make_student
from pcnalloc.distill.students import compact_layout
from pcnalloc.edge import keys
from pcnalloc.edge.agent import BoundModel, EdgeAgent, LocalState
from pcnalloc.edge.artifact import load_artifact
from pcnalloc.edge.mlp import CompiledMLP, NotAnMLP
from pcnalloc.envs import PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.export.compile import compile_student
from pcnalloc.library.schema import LibrarySpec


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], small_pool_graph_file: Path) -> EnvConfig:
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.fixture(scope="module")
def rows(cfg: EnvConfig) -> np.ndarray:
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=0)
    out = []
    for _ in range(128):
        out.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    return np.stack(out)


def _compile(module: torch.nn.Module, rows: np.ndarray, cfg: EnvConfig, tmp: Path) -> tuple:
    priv, pub = keys.save_keypair(tmp / "keys", "mlp")
    out = tmp / "artifact"
    compile_student(module, rows, env_config=cfg, private_key=priv, out_dir=out)
    return out, pub


def _student(cfg: EnvConfig, rows: np.ndarray, arch: str = "mlp") -> torch.nn.Module:
    spec = LibrarySpec.from_env_config(cfg)
    m = make_student(
        "edge",
        input_dim=rows.shape[1],
        n_actions=cfg.n_actions,
        arch=arch,
        layout=compact_layout(spec) if arch == "shared" else None,
        generator=torch.Generator().manual_seed(4),
    )
    x = torch.from_numpy(rows)
    m.set_standardisation(x.mean(0), x.std(0))
    return m.eval()


def test_compiled_runtime_decides_as_onnxruntime(
    cfg: EnvConfig, rows: np.ndarray, tmp_path: Path
) -> None:
    art, pub = _compile(_student(cfg, rows), rows, cfg, tmp_path)
    env = PowerCommEnv(cfg, observation="compact")
    ort_agent = EdgeAgent(art, pub, cfg, network=env.net)
    fast = EdgeAgent(art, pub, cfg, network=env.net, runtime="compiled")
    env.reset(seed=6)
    for i in range(200):
        local = LocalState.from_env(env)
        d = ort_agent.decide(local)
        z = ort_agent.last_logits.copy()
        assert fast.decide(local) == d, f"state {i}"
        np.testing.assert_allclose(fast.last_logits, z, atol=1e-5, err_msg=f"state {i}")
        env.step(d.action)
    with pytest.raises(ConfigError, match="runtime 'tvm'"):
        EdgeAgent(art, pub, cfg, network=env.net, runtime="tvm")


def test_disagreeing_reference_and_other_graphs_are_refused(
    cfg: EnvConfig, rows: np.ndarray, tmp_path: Path
) -> None:
    art, pub = _compile(_student(cfg, rows), rows, cfg, tmp_path / "mlp")
    a = load_artifact(art, pub)
    bm = BoundModel(a)
    ok = CompiledMLP(a.model(), bm.x_1D, bm.logits_1A, bm.run_batch)
    assert ok.parity_max_abs <= 1e-5
    with pytest.raises(NotAnMLP, match="disagrees"):  # planted: a reference 1e-3 away
        CompiledMLP(a.model(), bm.x_1D, bm.logits_1A, lambda x: bm.run_batch(x) + 1e-3)
    art2, pub2 = _compile(_student(cfg, rows, "shared"), rows, cfg, tmp_path / "shared")
    b = load_artifact(art2, pub2)
    bm2 = BoundModel(b)
    with pytest.raises(NotAnMLP):
        CompiledMLP(b.model(), bm2.x_1D, bm2.logits_1A, bm2.run_batch)
