"""With a user rule file in the env config, the edge agent tightens the mask exactly as the env.

The env restricts its evaluation through the engine's dict path (``Evaluation.restricted``);
the agent judges the same rules with the compiled program and edits its buffers in place.
Both must give the same mask, the same ``valid`` column in the compact vector, the same
per-rule violations and the same decisions, state by state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import EdgeAgent, LocalState
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student

RULES = """
version: 1
rules:
  - id: u_short_routes
    severity: hard
    violates: {all: [{field: hops, op: ge, value: 3}, {field: grant, op: lt, value: 1.0}]}
  - id: u_busy
    severity: hard
    violates: {field: util_after, op: gt, value: 0.6}
"""


@pytest.fixture(scope="module")
def cfg(
    make_config: Callable[..., EnvConfig],
    small_pool_graph_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> EnvConfig:
    p = tmp_path_factory.mktemp("rules") / "user.yaml"
    p.write_text(RULES)
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5}, rules=str(p))


def test_agent_mask_equals_env_with_rule_file(
    cfg: EnvConfig, tmp_path: Path, make_config: Callable[..., EnvConfig]
) -> None:
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=3)
    rows = []
    for _ in range(64):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[-1]))
    D = rows[0].shape[0]
    g = torch.Generator().manual_seed(2)
    m = torch.nn.Sequential(
        torch.nn.Linear(D, 16), torch.nn.ReLU(), torch.nn.Linear(16, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    priv, pub = keys.save_keypair(tmp_path / "keys", "edge")
    art = tmp_path / "artifact"
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=art)
    agent = EdgeAgent(art, pub, cfg, network=env.net)
    blind = EdgeAgent(art, pub, cfg, network=env.net)
    blind._mask_checker = None  # planted: an agent that ignores the rule file
    obs, _ = env.reset(seed=4)
    tightened = caught = 0
    for i in range(200):
        local = LocalState.from_env(env)
        blind.decide(local)
        caught += not np.array_equal(blind.last_evaluation.mask_A, env.current_evaluation.mask_A)
        d = agent.decide(local)
        ev, mine = env.current_evaluation, agent.last_evaluation
        np.testing.assert_array_equal(agent.compact, obs["compact"], err_msg=f"state {i}")
        np.testing.assert_array_equal(mine.mask_A, ev.mask_A, err_msg=f"state {i}")
        np.testing.assert_array_equal(
            mine.rule_violations_AR, ev.rule_violations_AR, err_msg=f"state {i}"
        )
        assert ev.mask_A[d.action]
        physical = ~ev.hard_AR[:-1].any(axis=1)
        tightened += bool(np.any(physical & (ev.mask_A[:-1] == 0)))
        obs, *_ = env.step(d.action)
    assert tightened > 0  # the rule file really removed physically allowed actions
    assert caught > 0  # and an agent without it would have been caught
