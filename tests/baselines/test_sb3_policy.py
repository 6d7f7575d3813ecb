"""``sb3@PATH.zip``: a saved Stable-Baselines3 / sb3-contrib model as an evaluation policy."""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from pcnalloc.baselines.registry import display_name, make_policy, policy_names
from pcnalloc.baselines.sb3 import MissingExtraError, SB3Policy
from pcnalloc.envs import FLAT_ENV_ID, PowerCommEnv
from pcnalloc.errors import ConfigError
from pcnalloc.evaluate.runner import run_policy


def _fake_zip(path: Path, module: str) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data", json.dumps({"policy_class": {"__module__": module}}))
    return path


def test_registered_and_named_by_file() -> None:
    assert "sb3" in policy_names()
    assert display_name("sb3@runs/x/ppo_case30.zip") == "sb3@ppo_case30"
    assert display_name("sb3@a/ppo.zip+rules") == "sb3@ppo+rules"


def test_missing_package_is_one_line_install_hint(tmp_path, monkeypatch) -> None:
    p = _fake_zip(tmp_path / "m.zip", "sb3_contrib.common.maskable.policies")
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)  # import now raises ImportError
    with pytest.raises(MissingExtraError, match=r"install pcnalloc\[sb3\]") as e:
        make_policy(f"sb3@{p}")
    assert "\n" not in str(e.value) and isinstance(e.value, ConfigError)


def test_bad_inputs_name_the_problem(tmp_path) -> None:
    with pytest.raises(ConfigError, match="needs a model file"):
        make_policy("sb3")
    with pytest.raises(ConfigError, match="does not exist"):
        make_policy(f"sb3@{tmp_path / 'none.zip'}")
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ConfigError, match="not a saved Stable-Baselines3 model"):
        make_policy(f"sb3@{tmp_path / 'text.zip'}")
    p = _fake_zip(tmp_path / "sac.zip", "stable_baselines3_fork.sac.policies")
    with pytest.raises(ConfigError, match="accepted: MaskablePPO"):
        make_policy(f"sb3@{p}")


@pytest.fixture(scope="module")
def cfg(small_pool_graph_file, make_config):
    return make_config(small_pool_graph_file, events="stress", traffic={"load": 1.5})


@pytest.fixture(scope="module")
def saved(cfg, tmp_path_factory) -> dict[str, Path]:
    """An untrained MaskablePPO and PPO on the flat id, saved (their actions are arbitrary,
    which is what the masking has to cope with)."""
    sb3_contrib = pytest.importorskip("sb3_contrib")
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make(FLAT_ENV_ID, config=cfg)
    d = tmp_path_factory.mktemp("sb3")
    out = {}
    for name, algo in (("mppo", sb3_contrib.MaskablePPO), ("ppo", sb3.PPO)):
        algo("MlpPolicy", env, seed=0, n_steps=64, batch_size=32).save(d / name)
        out[name] = d / f"{name}.zip"
    return out


@pytest.mark.parametrize("which", ["mppo", "ppo"])
def test_saved_model_plays_masked_and_deterministic(cfg, saved, which: str) -> None:
    pol = make_policy(f"sb3@{saved[which]}")
    assert isinstance(pol, SB3Policy) and pol.name == f"sb3@{which}"
    assert pol.algorithm == ("MaskablePPO" if which == "mppo" else "PPO")
    assert pol.env_overrides == {} and pol.model_bytes > 0
    a = run_policy(pol, cfg, seed=3, requests=150)["metrics"]
    b = run_policy(make_policy(f"sb3@{saved[which]}"), cfg, seed=3, requests=150)["metrics"]
    assert a == b
    assert a["outcomes"]["refused"] == 0 and a["executed_hard_violations"] == 0
    assert a["outcomes"]["accepted"] > 0


def test_without_the_mask_an_untrained_ppo_would_send_masked_actions(cfg, saved) -> None:
    """Planted fault: SB3's own unmasked predict picks forbidden actions, which the policy's
    masked argmax avoids — so the zero-refusal check above can fail."""
    pol = make_policy(f"sb3@{saved['ppo']}")
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=3)
    raw_bad = 0
    for _ in range(150):
        raw, _ = pol.model.predict(obs["compact"], deterministic=True)
        raw_bad += not obs["action_mask"][int(raw)]
        a = pol.act(obs)
        assert obs["action_mask"][a]
        obs, *_ = env.step(a)
    assert raw_bad > 0


def test_shape_mismatch_says_how_to_fix(cfg, saved) -> None:
    pol = make_policy(f"sb3@{saved['mppo']}")
    obs = {"compact": np.zeros(10, dtype=np.float32), "action_mask": np.ones(13, dtype=np.int8)}
    with pytest.raises(ConfigError, match="same k_paths and grant_levels"):
        pol.act(obs)
