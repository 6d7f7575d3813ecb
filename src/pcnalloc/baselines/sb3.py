"""A saved Stable-Baselines3 / sb3-contrib model as a policy (spec ``sb3@PATH.zip``).

Users train their own agent on ``pcnalloc/PowerComm-flat-v0`` (see docs/sb3.md) and compare
it with the teacher and the heuristics on the same seeds:
``pcnalloc evaluate --policies sb3@model.zip,ksp-ff,teacher@out/run/teacher``.

The model reads the compact vector, which is what the flat observation is, so a model trained
on the flat id plays in the evaluation runner unchanged. Stable-Baselines3 (and torch) are
imported only when such a policy is built; without them the error says which extra to install.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.errors import ConfigError, MissingExtraError

EXTRA = "sb3"
"""The optional dependency group that installs stable-baselines3 and sb3-contrib."""

_ALGOS: tuple[tuple[str, str, str], ...] = (
    ("sb3_contrib.common.maskable", "sb3_contrib", "MaskablePPO"),
    ("sb3_contrib.qrdqn", "sb3_contrib", "QRDQN"),
    ("stable_baselines3.dqn", "stable_baselines3", "DQN"),
    ("stable_baselines3.", "stable_baselines3", "PPO"),
)
"""Policy-class module prefix in the saved ``data`` → (package, algorithm) to load it with;
PPO also loads A2C models (same actor-critic policy)."""


def _algorithm(path: Path) -> tuple[str, str]:
    """(package, class) that saved the model at ``path``, read from the zip's ``data``."""
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data"))
        module = str(data["policy_class"]["__module__"])
    except (OSError, zipfile.BadZipFile, KeyError, TypeError, ValueError):
        raise ConfigError(
            f"sb3 policy: {str(path)!r} is not a saved Stable-Baselines3 model "
            "(a .zip written by model.save())"
        ) from None
    for prefix, package, algo in _ALGOS:
        if module.startswith(prefix):
            return package, algo
    accepted = "MaskablePPO, QRDQN, DQN, PPO, A2C"
    raise ConfigError(f"sb3 policy: {str(path)!r} holds a {module} policy; accepted: {accepted}")


class SB3Policy:
    """Greedy actions of a saved SB3 model on the compact vector, masked.

    MaskablePPO predicts with the mask; for the other algorithms the action is the best valid
    one by the model's own scores (action logits or Q-values), so a policy never sends a
    masked action.

    Args:
        path: the ``.zip`` saved by ``model.save()``.
        name: report name.
    """

    observation = "compact"

    def __init__(self, path: str | Path, *, name: str = "sb3") -> None:
        p = Path(path)
        if p.suffix != ".zip" and not p.exists() and p.with_suffix(".zip").exists():
            p = p.with_suffix(".zip")  # SB3's own load() accepts the name without .zip
        if not p.is_file():
            raise ConfigError(f"sb3 policy: model file {str(path)!r} does not exist")
        package, algo = _algorithm(p)
        try:
            cls = getattr(importlib.import_module(package), algo)
        except ImportError:
            raise MissingExtraError(EXTRA, f"policy sb3@{path} ({algo})") from None
        self.model = cls.load(str(p), device="cpu")
        self.path = p
        self.name = name
        self.algorithm = algo
        self.maskable = algo == "MaskablePPO"
        self.n_actions = int(self.model.action_space.n)
        self.obs_dim = int(np.prod(self.model.observation_space.shape))
        self.model_bytes = int(
            sum(t.numel() * t.element_size() for t in self.model.policy.parameters())
        )
        self.env_overrides: dict[str, Any] = _overrides_for(self.n_actions)

    def reset(self, seed: int | None = None) -> None:
        return None

    def _scores(self, vec: np.ndarray) -> np.ndarray:
        import torch

        pol = self.model.policy
        obs_t, _ = pol.obs_to_tensor(vec)
        with torch.no_grad():
            if hasattr(pol, "q_net"):  # DQN
                return pol.q_net(obs_t)[0].numpy()
            if hasattr(pol, "quantile_net"):  # QR-DQN: mean over quantiles
                return pol.quantile_net(obs_t).mean(dim=1)[0].numpy()
            return pol.get_distribution(obs_t).distribution.logits[0].numpy()

    def act(self, obs: dict[str, np.ndarray]) -> int:
        vec = np.asarray(obs["compact"], dtype=np.float32)
        mask = np.asarray(obs["action_mask"]).astype(bool)
        if vec.shape != (self.obs_dim,) or mask.shape != (self.n_actions,):
            raise ConfigError(
                f"sb3 model {self.path.name} expects a {self.obs_dim}-vector and "
                f"{self.n_actions} actions; the environment gives {vec.shape[0]} and "
                f"{mask.shape[0]} (train and evaluate with the same k_paths and grant_levels)"
            )
        if self.maskable:
            action, _ = self.model.predict(vec, action_masks=mask, deterministic=True)
            return int(action)
        scores = self._scores(vec).astype(np.float64)
        scores[~mask] = -np.inf
        return int(np.argmax(scores))


def _overrides_for(n_actions: int) -> dict[str, Any]:
    """The K and L a model of ``n_actions`` actions was trained with, assuming the default
    grant levels (K·L + 1 = n_actions); empty when the defaults fit or nothing does."""
    defaults = EnvConfig()
    if n_actions == defaults.n_actions:
        return {}
    L = defaults.grant_levels
    k, rest = divmod(n_actions - 1, L)
    if rest == 0 and 1 <= k <= 16:
        return {"k_paths": k, "grant_levels": L}
    return {}


def make_sb3(arg: str = "", **kwargs: Any) -> SB3Policy:
    """Factory registered as ``sb3``: ``sb3@PATH.zip``."""
    if not arg:
        raise ConfigError("policy 'sb3' needs a model file: sb3@PATH.zip")
    kwargs.pop("k", None)
    return SB3Policy(arg, **kwargs)
