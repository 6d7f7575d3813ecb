"""Per-device double-DQN teacher for the epoch-level PLC/5G decision on ``pcnalloc/Access-v0``.

Why its own trainer: :mod:`pcnalloc.teacher.train` learns one ``Discrete(K·L+1)`` choice per
request from the backbone's graph observation through a replay of full graph observations;
the access decision is ``MultiDiscrete([2]*I)``, one mode per device and epoch (2^100 joint
actions at I = 100). It is therefore factored: one Q network shared by all devices maps a
device's row of :func:`~pcnalloc.access.features.device_features` (own queue and channel
state plus the context of the others) to Q(PLC), Q(5G), and learns from the device's own
drift-plus-penalty (``info["device_cost"]``, whose mean is the env reward) — independent
learners with shared weights, the reward split exactly as the objective of problem P2 sums
over devices. The joint constraints C3/C4 (at most J1 on PLC, J2 on 5G) are met by
:func:`~pcnalloc.access.policy.cap_modes`: devices keep their greedy mode in order of their
Q gap. The TD target is the project's :func:`pcnalloc.teacher.dqn.double_dqn_target`;
training seeds start at :data:`pcnalloc.teacher.TRAIN_SEED_BASE`, disjoint from evaluation
seeds. Transitions always bootstrap: the queues go on after the last epoch of an episode.

Two encoders (``AccessTeacherConfig.encoder``): ``gnn`` (the default, ahead of the MLP teacher
on three of three trainings, docs/access.md), a GATv2 network over the device–subchannel graph
(:mod:`.graph`, :mod:`.gnn`); ``mlp``, the shared MLP on each device's row (about a third of the
training time). Both output the same per-device (Q(PLC), Q(5G)), so exploration,
the C3/C4 cap, the TD target and everything downstream (library, student, artifact) are
shared. The graph teacher's replay holds whole epochs (the I device rows, modes, rewards and
next rows, plus a reference to the episode's static subchannel/edge arrays) and builds the
graph batch of ``gnn_batch_epochs`` sampled epochs at update time, ``gnn_updates_per_epoch``
times per env step. A batch of whole epochs is correlated (its I rows share one state), so it
needs more epochs than ⌈batch_size / I⌉ (3 at I = 100): measured with 3 epochs and 4 steps the
graph teacher was behind the MLP one, with 8 epochs and 2 steps ahead of it (docs/access.md).
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from pcnalloc.access.config import AccessConfig
from pcnalloc.access.errors import AccessConfigError
from pcnalloc.access.features import FEATURES, N_FEATURES, device_features
from pcnalloc.access.policy import cap_modes
from pcnalloc.twolayer.teacher_config import ENCODERS, AccessTeacherConfig
from pcnalloc.twolayer.teacher_config import TRAIN_SEED_BASE as TRAIN_SEED_BASE

if TYPE_CHECKING:
    from pcnalloc.access.env import AccessEnv
    from pcnalloc.twolayer.graph import StaticGraph

TEACHER_FORMAT = "pcnalloc-access-teacher"
TEACHER_VERSION = 1


def q_network(hidden: tuple[int, ...], seed: int) -> Any:
    """Shared per-device Q network: N_FEATURES → hidden … → 2 (ReLU MLP), seeded."""
    import torch
    from torch import nn

    layers: list[Any] = []
    width = N_FEATURES
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    layers.append(nn.Linear(width, 2))
    net = nn.Sequential(*layers)
    # seeded through an explicit generator (PyTorch's default Linear init, drawn from it),
    # so the weights never depend on the global RNG's state
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=gen)
                bound = 1.0 / math.sqrt(m.in_features)
                nn.init.uniform_(m.bias, -bound, bound, generator=gen)
    return net


def build_q_network(cfg: AccessTeacherConfig) -> Any:
    """The teacher's Q network for ``cfg.encoder``, seeded with ``cfg.seed``."""
    if cfg.encoder == "gnn":
        from pcnalloc.twolayer.gnn import graph_q_network

        return graph_q_network(
            hidden=cfg.gnn_hidden,
            rounds=cfg.gnn_rounds,
            q_hidden=cfg.hidden,
            top_k=cfg.gnn_top_k,
            seed=cfg.seed,
        )
    return q_network(cfg.hidden, cfg.seed)


def joint_modes(scores: np.ndarray, mask: np.ndarray, cfg: AccessConfig) -> np.ndarray:
    """Per-device masked argmax of ``scores`` (I, 2), then C3/C4 by the score gap.

    Devices whose preference is strongest keep their mode while the mode's places last;
    an unreachable mode is never chosen (``mask`` (I, 2); a device with no reachable mode
    may take either).
    """
    m = mask.copy()
    m[~m.any(axis=1)] = True
    s = np.where(m, scores, -np.inf)
    want = np.argmax(s, axis=1).astype(np.int64)
    gap = np.abs(np.where(m.all(axis=1), scores[:, 1] - scores[:, 0], np.inf))
    return cap_modes(want, gap, (cfg.plc_subchannels, cfg.g5_subchannels))


class _Replay:
    """Ring buffer of per-device transitions (x, a, r, x′, mask′) as flat numpy arrays."""

    def __init__(self, capacity: int) -> None:
        self.x = np.zeros((capacity, N_FEATURES), np.float32)
        self.x2 = np.zeros((capacity, N_FEATURES), np.float32)
        self.a = np.zeros(capacity, np.int64)
        self.r = np.zeros(capacity, np.float32)
        self.m2 = np.zeros((capacity, 2), bool)
        self.cap, self.ptr, self.size = capacity, 0, 0

    def add(
        self,
        x: np.ndarray,
        a: np.ndarray,
        r: np.ndarray,
        x2: np.ndarray,
        m2: np.ndarray,
        static: StaticGraph | None = None,
    ) -> None:
        n = len(a)
        idx = (self.ptr + np.arange(n)) % self.cap
        self.x[idx], self.a[idx], self.r[idx], self.x2[idx], self.m2[idx] = x, a, r, x2, m2
        self.ptr = int((self.ptr + n) % self.cap)
        self.size = min(self.size + n, self.cap)

    @property
    def transitions(self) -> int:
        return self.size

    def sample(self, b: int, rng: np.random.Generator) -> tuple[Any, ...]:
        """(x, a, r, x′, mask′) of ``b`` device transitions; x and x′ as network inputs."""
        import torch

        i = rng.integers(self.size, size=b)
        return (
            torch.from_numpy(self.x[i]),
            self.a[i],
            self.r[i],
            torch.from_numpy(self.x2[i]),
            self.m2[i],
        )


class _GraphReplay:
    """Ring buffer of whole epochs for the graph teacher (lean: numpy rows, graphs built late).

    Each entry is one epoch of the I devices (x, a, r, x′, mask′) and the id of its episode's
    :class:`~pcnalloc.twolayer.graph.StaticGraph` (the subchannel rows and edges, fixed per
    episode and stored once); :meth:`sample` draws epochs and joins their graphs with
    :func:`~pcnalloc.twolayer.graph.batch_graphs`.
    """

    def __init__(self, capacity_transitions: int, devices: int, batch_epochs: int) -> None:
        cap = max(1, capacity_transitions // devices)
        self.x = np.zeros((cap, devices, N_FEATURES), np.float32)
        self.x2 = np.zeros((cap, devices, N_FEATURES), np.float32)
        self.a = np.zeros((cap, devices), np.int64)
        self.r = np.zeros((cap, devices), np.float32)
        self.m2 = np.zeros((cap, devices, 2), bool)
        self.gid = np.zeros(cap, np.int64)
        self.graphs: dict[int, StaticGraph] = {}
        self.epochs_per_batch = batch_epochs
        self.devices = devices
        self.cap, self.ptr, self.size = cap, 0, 0
        self._last: StaticGraph | None = None
        self._next_gid = -1

    @property
    def transitions(self) -> int:
        return self.size * self.devices

    def add(
        self,
        x: np.ndarray,
        a: np.ndarray,
        r: np.ndarray,
        x2: np.ndarray,
        m2: np.ndarray,
        static: StaticGraph,
    ) -> None:
        if static is not self._last:
            self._next_gid += 1
            self.graphs[self._next_gid] = static
            self._last = static
        k = self.ptr
        self.x[k], self.a[k], self.r[k], self.x2[k], self.m2[k] = x, a, r, x2, m2
        self.gid[k] = self._next_gid
        self.ptr = (self.ptr + 1) % self.cap
        self.size = min(self.size + 1, self.cap)
        live = set(self.gid[: self.size].tolist())
        for g in [g for g in self.graphs if g not in live]:
            del self.graphs[g]

    def sample(self, b: int, rng: np.random.Generator) -> tuple[Any, ...]:
        """(graphs of x, a, r, graphs of x′, mask′) of ``batch_epochs`` epochs (``b`` is not
        used: the batch is whole epochs), devices flattened."""
        from pcnalloc.twolayer.graph import batch_graphs

        i = rng.integers(self.size, size=self.epochs_per_batch)
        statics = [self.graphs[int(g)] for g in self.gid[i]]
        return (
            batch_graphs(statics, list(self.x[i])),
            self.a[i].reshape(-1),
            self.r[i].reshape(-1),
            batch_graphs(statics, list(self.x2[i])),
            self.m2[i].reshape(-1, 2),
        )


def train_access_teacher(
    env_config: AccessConfig,
    cfg: AccessTeacherConfig,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Train the per-device teacher on ``pcnalloc/Access-v0``; returns (Q network, log rows).

    One log row per episode: ``episode``, ``seed``, ``epsilon``, ``mean_reward`` (the env's
    reward, minus the mean drift-plus-penalty per slot and device), ``loss``, ``seconds``.
    """
    import gymnasium as gym
    import torch

    import pcnalloc.envs  # noqa: F401  (registers pcnalloc/Access-v0)
    from pcnalloc.teacher.dqn import double_dqn_target

    torch.set_num_threads(cfg.threads)
    env = cast("AccessEnv", gym.make("pcnalloc/Access-v0", config=env_config).unwrapped)
    online = build_q_network(cfg)
    target = copy.deepcopy(online).requires_grad_(False)
    opt = torch.optim.Adam(online.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.HuberLoss(delta=cfg.huber_delta)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xACCE55]))
    n = env_config.devices
    graph = cfg.encoder == "gnn"
    replay: _Replay | _GraphReplay = (
        _GraphReplay(cfg.replay, n, cfg.gnn_batch_epochs) if graph else _Replay(cfg.replay)
    )
    updates_per_epoch = cfg.gnn_updates_per_epoch if graph else cfg.updates_per_epoch
    static: StaticGraph | None = None

    def net_input(x: np.ndarray) -> Any:
        if static is None:
            return torch.from_numpy(x)
        from pcnalloc.twolayer.graph import batch_graphs

        return batch_graphs([static], [x])

    updates, log = 0, []
    decay = max(1, round(cfg.episodes * cfg.eps_decay))
    for ep in range(cfg.episodes):
        t0 = time.perf_counter()
        eps = cfg.eps_start + (cfg.eps_end - cfg.eps_start) * min(1.0, ep / decay)
        seed = cfg.train_seed(ep)
        env.reset(seed=seed)
        if graph:
            from pcnalloc.twolayer.graph import static_graph

            static = static_graph(env.model, cfg.gnn_top_k)
        x = device_features(env.model)
        mask = env.action_masks().reshape(n, 2)
        rewards: list[float] = []
        losses: list[float] = []
        done = False
        while not done:
            with torch.no_grad():
                q = online(net_input(x)).numpy()
            explore = rng.random(n) < eps
            q_act = np.where(explore[:, None], rng.random((n, 2)), q)
            modes = joint_modes(q_act, mask, env_config)
            _, reward, done, _, info = env.step(modes)
            x2 = device_features(env.model)
            mask2 = env.action_masks().reshape(n, 2)
            r = -np.asarray(info["device_cost"], np.float32)
            if isinstance(replay, _GraphReplay):
                assert static is not None
                replay.add(x, modes, r, x2, mask2, static)
            else:
                replay.add(x, modes, r, x2, mask2)
            rewards.append(float(reward))
            x, mask = x2, mask2
            if replay.transitions < cfg.warmup:
                continue
            for _ in range(updates_per_epoch):
                bx, ba, br, tx2, bm2 = replay.sample(cfg.batch_size, rng)
                with torch.no_grad():
                    y = double_dqn_target(
                        torch.from_numpy(br),
                        online(tx2),
                        target(tx2),
                        torch.from_numpy(bm2),
                        cfg.gamma,
                    )
                qa = online(bx).gather(1, torch.from_numpy(ba)[:, None])[:, 0]
                loss = loss_fn(qa, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(online.parameters(), cfg.max_grad_norm)
                opt.step()
                updates += 1
                losses.append(float(loss.detach()))
                if updates % cfg.target_update == 0:
                    target.load_state_dict(online.state_dict())
        row = {
            "episode": ep,
            "seed": seed,
            "epsilon": round(eps, 4),
            "mean_reward": float(np.mean(rewards)),
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "seconds": time.perf_counter() - t0,
        }
        log.append(row)
        if progress is not None:
            progress(row)
    return online.eval(), log


def save_teacher(
    path: str | Path,
    net: Any,
    *,
    cfg: AccessTeacherConfig,
    env_config: AccessConfig,
    log: list[dict[str, Any]],
) -> str:
    """Write the teacher checkpoint atomically; returns its SHA-256."""
    import torch

    from pcnalloc.fileio import write_atomic

    buf = io.BytesIO()
    torch.save(
        {
            "format": TEACHER_FORMAT,
            "version": TEACHER_VERSION,
            "features": list(FEATURES),
            "hidden": list(cfg.hidden),
            "encoder": cfg.encoder,
            "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
            "teacher_config": cfg.model_dump(mode="json"),
            "access_config": env_config.model_dump(mode="json"),
            "train_log": log,
        },
        buf,
    )
    data = buf.getvalue()
    write_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_teacher(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """The teacher's Q network (eval mode) and its checkpoint dict.

    Raises:
        AccessConfigError: a missing, unreadable or foreign file, or other features.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise AccessConfigError(f"access teacher checkpoint {str(p)!r} does not exist")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign file
        raise AccessConfigError(f"cannot read access teacher {str(p)!r}: {err}") from None
    if not isinstance(ck, dict) or ck.get("format") != TEACHER_FORMAT:
        raise AccessConfigError(f"{str(p)!r} is not an access teacher checkpoint")
    if ck.get("version") != TEACHER_VERSION or ck.get("features") != list(FEATURES):
        raise AccessConfigError(
            f"{str(p)!r} was trained on other features or another checkpoint version; "
            "train it again with `pcnalloc access train`"
        )
    encoder = ck.get("encoder", "mlp")  # checkpoints before the gnn encoder hold an MLP
    if encoder not in ENCODERS:
        raise AccessConfigError(
            f"{str(p)!r} names encoder {encoder!r}; accepted: {', '.join(ENCODERS)}"
        )
    tc = ck.get("teacher_config") or {}
    try:
        net = build_q_network(
            AccessTeacherConfig(
                hidden=tuple(ck["hidden"]),
                encoder=encoder,
                gnn_hidden=tc.get("gnn_hidden", 32),
                gnn_rounds=tc.get("gnn_rounds", 1),
                gnn_top_k=tc.get("gnn_top_k", 8),
            )
        )
        net.load_state_dict(ck["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AccessConfigError(f"cannot load access teacher {str(p)!r}: {msg}") from None
    return net.eval(), ck


__all__ = [
    "ENCODERS",
    "TEACHER_FORMAT",
    "AccessTeacherConfig",
    "build_q_network",
    "joint_modes",
    "load_teacher",
    "q_network",
    "save_teacher",
    "train_access_teacher",
]
