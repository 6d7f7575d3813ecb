"""docs/formats.md's ONNX-Runtime-only decoder runs as written: its mask is the env's
``action_mask``, its decisions are EdgePolicy's, its layout offsets name the right columns."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import EdgePolicy
from pcnalloc.envs import PowerCommEnv
from pcnalloc.export.compile import compile_student

DOC = Path(__file__).resolve().parents[2] / "docs" / "formats.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def compiled(
    tmp_path_factory: pytest.TempPathFactory,
    make_config: Callable[..., EnvConfig],
    small_pool_graph_file: Path,
) -> tuple[Path, Path, EnvConfig]:
    cfg = make_config(small_pool_graph_file, events="calm", traffic={"warm_start": False})
    priv, pub = keys.save_keypair(tmp_path_factory.mktemp("keys"), "doc")
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=3)
    rows = []
    for _ in range(40):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(rows[0].shape[0], cfg.n_actions))
    m.input_key = "compact"
    out = tmp_path_factory.mktemp("edge") / "artifact"
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=out)
    return out, pub, cfg


def test_the_documented_decoder_matches_the_env_and_edge_policy(compiled) -> None:
    artifact, pub, cfg = compiled
    decoder = _python_blocks()[0]
    ns: dict = {"ARTIFACT": artifact, "PUBLIC_KEY": pub}
    exec(compile(decoder, str(DOC), "exec"), ns)  # the block as a user would paste it
    policy = EdgePolicy(artifact, pub)
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=11)
    seen = set()
    for _ in range(150):
        a, mask = ns["decide"](obs["compact"])
        np.testing.assert_array_equal(mask, obs["action_mask"] > 0)
        assert a == policy.act(obs)
        assert mask[a] and mask[-1]  # the decision is valid; reject always is
        seen.add(ns["decode"](a))
        obs, _, term, trunc, _ = env.step(a)
        if term or trunc:
            obs, _ = env.reset(seed=12)
    assert any(s.startswith("path ") for s in seen)
    L = cfg.grant_levels
    assert ns["decode"](cfg.n_actions - 1) == "reject"
    assert ns["decode"](2 * L + 1) == "path 2, grant slot 1"


def test_planted_a_decoder_reading_the_wrong_column_is_caught(compiled) -> None:
    """The same block with the ``is_reject`` column in place of ``valid`` disagrees."""
    artifact, pub, cfg = compiled
    wrong = _python_blocks()[0].replace('index("valid")', 'index("is_reject")')
    assert wrong != _python_blocks()[0]
    ns: dict = {"ARTIFACT": artifact, "PUBLIC_KEY": pub}
    exec(compile(wrong, "planted", "exec"), ns)
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=11)
    _, mask = ns["decide"](obs["compact"])
    assert not np.array_equal(mask, obs["action_mask"] > 0)


def test_the_documented_feature_name_index(compiled) -> None:
    """``names[27 + 11 * 3 + 8]`` is ``candidates[3].valid`` on the defaults, as the doc says,
    and the layout table's offsets are the manifest's."""
    from pcnalloc.config import env_config
    from pcnalloc.library.schema import LibrarySpec, compact_feature_names

    text = DOC.read_text(encoding="utf-8")
    spec = LibrarySpec.from_env_config(env_config())
    names = compact_feature_names(spec)
    assert names is not None and len(names) == 183
    assert names[27 + 11 * 3 + 8] == "candidates[3].valid"
    artifact, _, _ = compiled
    layout = json.loads((artifact / "manifest.json").read_text())["input"]["layout"]
    for b in layout["blocks"]:
        assert f"`{b['name']}` | {b['offset']} |" in text
