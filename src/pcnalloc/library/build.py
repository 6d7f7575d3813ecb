"""Roll the teacher out and write the trajectory library (DESIGN §6).

Work is split into :class:`RolloutTask` items — ``lockstep`` episodes of one (case, load)
played side by side so the teacher scores them in one batched forward pass — and mapped over
an executor (``map_ordered(fn, items)``: the local process pool by default, Ray later). Each
task seeds its env and its exploration from its own episode seeds, and the grouping depends
only on the plan, so the same seeds give the same rows whatever the worker count.

Episode seeds default to ``LIBRARY_SEED_BASE + i`` (i = episode index within a case and
load), disjoint from training seeds (≥ 1,000,000) and the usual evaluation seeds (< 100,000).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.library.schema import LibraryError, LibrarySpec, encode_metadata
from pcnalloc.library.writer import LibraryWriter, RowBlock, write_manifest

log = logging.getLogger(__name__)

LIBRARY_SEED_BASE = 200_000
"""First env seed of library episodes."""


@dataclass(frozen=True)
class RolloutTask:
    """Episodes of one (case, load) played in lockstep by one worker.

    Attributes:
        checkpoint: teacher ``.pt`` file.
        env_config: EnvConfig dump of these episodes (teacher's config, case and load set).
        seeds: env seed of each episode.
        episode_ids: library-wide id of each episode.
        requests: decisions per episode.
        explore: probability of a uniform valid action instead of the greedy one.
    """

    checkpoint: str
    env_config: dict[str, Any]
    seeds: tuple[int, ...]
    episode_ids: tuple[int, ...]
    requests: int
    explore: float


_TEACHERS: dict[str, Any] = {}


def _teacher(path: str) -> Any:
    """Per-process cache: each worker loads a checkpoint once."""
    if path not in _TEACHERS:
        from pcnalloc.teacher.policy import TeacherPolicy

        _TEACHERS[path] = TeacherPolicy.load(path)
    return _TEACHERS[path]


def rollout_task(task: RolloutTask) -> RowBlock:
    """Play the task's episodes; return their rows (episode-major, then step order)."""
    import torch

    from pcnalloc.envs import PowerCommEnv

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same arithmetic in every worker and in serial mode
    try:
        teacher = _teacher(task.checkpoint)
        cfg = EnvConfig.model_validate(task.env_config)
        envs = [PowerCommEnv(cfg, observation="full")]
        envs += [
            PowerCommEnv(cfg, observation="full", network=envs[0].net, catalog=envs[0].catalog)
            for _ in task.seeds[1:]
        ]
        rngs = [
            np.random.default_rng([s, e]) for s, e in zip(task.seeds, task.episode_ids, strict=True)
        ]
        obs = [env.reset(seed=s)[0] for env, s in zip(envs, task.seeds, strict=True)]
        M, T, A = len(envs), task.requests, cfg.n_actions
        Q = envs[0].current_evaluation.soft_AQ.shape[1]
        D = obs[0]["compact"].shape[0]
        out = {
            "compact": np.zeros((M, T, D), np.float32),
            "state": np.zeros((M, T, teacher.model.shape.state_dim), np.float32),
            "q_values": np.zeros((M, T, A), np.float32),
            "action_mask": np.zeros((M, T, A), np.int8),
            "hard": np.zeros((M, T, A), np.int8),
            "soft": np.zeros((M, T, A, Q), np.float32),
            "action": np.zeros((M, T), np.int16),
            "greedy": np.zeros((M, T), np.int8),
            "reward": np.zeros((M, T), np.float32),
        }
        for t in range(T):
            state_MS, q_MA = teacher.state_and_q_batch(obs)
            for m, env in enumerate(envs):
                o, ev = obs[m], env.current_evaluation
                mask = o["action_mask"]
                valid = np.flatnonzero(mask)
                greedy = int(valid[np.argmax(q_MA[m, valid])])
                a = greedy
                if task.explore > 0 and rngs[m].random() < task.explore:
                    a = int(valid[rngs[m].integers(valid.size)])
                out["compact"][m, t] = o["compact"]
                out["action_mask"][m, t] = mask
                out["hard"][m, t] = ev.hard_AR.any(axis=1)
                out["soft"][m, t] = ev.soft_AQ
                out["action"][m, t] = a
                out["greedy"][m, t] = a == greedy
                obs[m], r, _, _, _ = env.step(a)
                out["reward"][m, t] = r
            out["state"][:, t] = state_MS
            out["q_values"][:, t] = q_MA
    finally:
        torch.set_num_threads(threads)
    rows: RowBlock = {k: v.reshape(M * T, *v.shape[2:]) for k, v in out.items()}
    rows["episode_id"] = np.repeat(np.array(task.episode_ids, np.int64), T)
    rows["seed"] = np.repeat(np.array(task.seeds, np.int64), T)
    rows["step"] = np.tile(np.arange(T, dtype=np.int32), M)
    rows["case"] = cfg.network.case
    rows["load"] = np.full(M * T, cfg.traffic.load, np.float32)
    return rows


@dataclass
class BuildResult:
    """What :func:`build_library` wrote."""

    path: Path
    rows: int
    episodes: int
    wall_s: float
    spec: LibrarySpec
    per_case_load: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / max(self.wall_s, 1e-9)


def plan_tasks(
    checkpoint: str,
    base: EnvConfig,
    *,
    cases: Sequence[str],
    loads: Sequence[float],
    episodes: int,
    requests: int,
    explore: float,
    seed_base: int = LIBRARY_SEED_BASE,
    lockstep: int = 8,
) -> list[RolloutTask]:
    """Split (cases × loads × episodes) into lockstep tasks; episode ids follow plan order."""
    tasks: list[RolloutTask] = []
    eid = 0
    for case in cases:
        for load in loads:
            d = base.model_dump()
            d["network"]["case"] = case
            d["traffic"]["load"] = float(load)
            d["episode_requests"] = requests
            env = EnvConfig.model_validate(d).model_dump()
            for start in range(0, episodes, lockstep):
                n = min(lockstep, episodes - start)
                tasks.append(
                    RolloutTask(
                        checkpoint=checkpoint,
                        env_config=env,
                        seeds=tuple(seed_base + start + i for i in range(n)),
                        episode_ids=tuple(range(eid, eid + n)),
                        requests=requests,
                        explore=explore,
                    )
                )
                eid += n
    return tasks


def build_library(
    teacher: str | Path,
    out_dir: str | Path,
    *,
    cases: Sequence[str],
    loads: Sequence[float],
    episodes: int,
    requests: int | None = None,
    explore: float = 0.05,
    executor: Any = None,
    seed_base: int = LIBRARY_SEED_BASE,
    lockstep: int = 8,
    progress: Callable[[int], None] | None = None,
) -> BuildResult:
    """Roll the teacher out and write ``out_dir/part-00000.parquet`` + ``manifest.json``.

    Args:
        teacher: checkpoint file or training folder (its latest checkpoint).
        out_dir: library folder (created).
        cases, loads: grid cases and offered loads; ``episodes`` episodes per pair.
        requests: decisions per episode (default: the teacher env's ``episode_requests``).
        explore: share of uniformly random valid actions (recorded with ``greedy = 0``).
        executor: object with ``map_ordered(fn, items)``; None = serial in this process.
        seed_base: env seed of the first episode of each (case, load).
        lockstep: episodes per task, scored in one batched forward pass.
        progress: called with the number of rows just written.

    Raises:
        LibraryError: bad arguments. CheckpointError: an unreadable teacher.
    """
    from pcnalloc.teacher.checkpoint import file_sha256, load_checkpoint

    if episodes < 1 or not cases or not loads:
        raise LibraryError(
            f"need ≥ 1 episode, case and load; got episodes={episodes}, cases={list(cases)}, "
            f"loads={list(loads)}"
        )
    if not 0 <= explore <= 1:
        raise LibraryError(f"explore must be in [0, 1], got {explore}")
    ck = load_checkpoint(teacher)
    ck_path = ck["path"]
    base = EnvConfig.model_validate(ck["env_config"])
    n_req = requests or base.episode_requests
    spec = LibrarySpec.from_env_config(base, state_dim=ck["encoder_shape"]["state_dim"])
    tasks = plan_tasks(
        ck_path,
        base,
        cases=cases,
        loads=loads,
        episodes=episodes,
        requests=n_req,
        explore=explore,
        seed_base=seed_base,
        lockstep=lockstep,
    )
    sha = file_sha256(ck_path)
    seeds = [seed_base + i for i in range(episodes)]
    meta = encode_metadata(
        spec,
        env_config=base,
        teacher_sha256=sha,
        seeds=seeds,
        cases=list(cases),
        loads=list(loads),
        extra={
            "explore": explore,
            "episodes_per_case_load": episodes,
            "requests": n_req,
            "lockstep": lockstep,
            "teacher_checkpoint": str(ck_path),
        },
    )
    out = Path(out_dir)
    path = out / "part-00000.parquet"
    chunk = max(getattr(executor, "workers", 1), 1) * 2
    t0 = time.perf_counter()
    stats: dict[str, list[float]] = {}
    n_rows = 0
    with LibraryWriter(path, spec=spec, metadata=meta) as writer:
        for i in range(0, len(tasks), chunk):
            part = tasks[i : i + chunk]
            blocks = (
                [rollout_task(t) for t in part]
                if executor is None
                else executor.map_ordered(rollout_task, part)
            )
            for block in blocks:
                writer.write(block)
                n = len(block["action"])
                n_rows += n
                key = f"{block['case']}@{float(block['load'][0]):g}"
                s = stats.setdefault(key, [0.0, 0.0, 0.0])
                s[0] += n
                s[1] += float(block["greedy"].sum())
                s[2] += float(block["reward"].sum())
                if progress is not None:
                    progress(n)
    wall = time.perf_counter() - t0
    per = {
        k: {"rows": v[0], "greedy_share": v[1] / v[0], "mean_reward": v[2] / v[0]}
        for k, v in stats.items()
    }
    write_manifest(
        out,
        {
            "files": [path.name],
            "rows": n_rows,
            "episodes": episodes * len(cases) * len(loads),
            "teacher_sha256": sha,
            "teacher_checkpoint": str(ck_path),
            "cases": list(cases),
            "loads": list(loads),
            "seeds": seeds,
            "explore": explore,
            "spec": spec.to_json(),
            "per_case_load": per,
            "wall_s": round(wall, 2),
        },
    )
    log.info("library: %d rows in %.1f s → %s", n_rows, wall, path)
    return BuildResult(
        path=path,
        rows=n_rows,
        episodes=episodes * len(cases) * len(loads),
        wall_s=wall,
        spec=spec,
        per_case_load=per,
    )
