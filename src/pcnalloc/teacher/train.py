"""Teacher training loop: ε-greedy rollouts, replay updates, evaluation, logs, checkpoints."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcnalloc.baselines import make_policy
from pcnalloc.config import EnvConfig
from pcnalloc.core.tblog import ScalarLog
from pcnalloc.envs import PowerCommEnv
from pcnalloc.evaluate import run_policy
from pcnalloc.fileio import staged_dir
from pcnalloc.nn import EncoderShape, cat_batches, collate
from pcnalloc.teacher.checkpoint import (
    CheckpointError,
    check_compatible,
    load_checkpoint,
    load_state,
    save_checkpoint,
    step_path,
)
from pcnalloc.teacher.config import TeacherConfig
from pcnalloc.teacher.demos import DemoSet, collect_demonstrations
from pcnalloc.teacher.dqn import DoubleDQN, epsilon_greedy_batch
from pcnalloc.teacher.policy import TeacherPolicy
from pcnalloc.teacher.replay import ReplayBuffer

log = logging.getLogger(__name__)

LOG_COLUMNS = (
    "step",
    "episode",
    "epsilon",
    "loss",
    "q_mean",
    "margin",
    "episode_reward",
    "eval_value_ratio",
    "eval_baseline_value_ratio",
    "eval_blocking_le1",
    "eval_baseline_blocking_le1",
    "steps_per_s",
    "wall_s",
)
"""Columns of ``train_log.csv`` (empty cells where a value was not measured in that row)."""


@dataclass
class TrainResult:
    """What a training run produced."""

    step: int
    episodes: int
    updates: int
    checkpoint: Path
    wall_s: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    last_eval: dict[str, float] = field(default_factory=dict)
    demos: dict[str, Any] | None = None


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class Trainer:
    """Runs (or resumes) one teacher training into ``out_dir``.

    Args:
        cfg: teacher config.
        out_dir: folder for ``step_*.pt``, ``train_log.csv``, ``learning_curve.png``.
        resume: continue from the latest checkpoint in ``out_dir`` at its step.
        on_progress: called as ``on_progress(step, scalars)`` every 100 env steps.
    """

    def __init__(
        self,
        cfg: TeacherConfig,
        out_dir: str | Path,
        *,
        resume: bool = False,
        on_progress: Callable[[int, dict[str, Any]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.on_progress = on_progress
        first = cfg.env_for_load(cfg.loads[0])
        base = PowerCommEnv(first, observation="full")
        # One env per (vector slot, load); all share the network, catalog and path cache.
        self.env_pool: list[dict[float, PowerCommEnv]] = []
        for i in range(cfg.n_envs):
            row: dict[float, PowerCommEnv] = {}
            for load in cfg.loads:
                if i == 0 and load == cfg.loads[0]:
                    row[load] = base
                else:
                    row[load] = PowerCommEnv(
                        cfg.env_for_load(load),
                        observation="full",
                        network=base.net,
                        catalog=base.catalog,
                    )
            self.env_pool.append(row)
        self.envs = self.env_pool[0]
        self.shape = EncoderShape.for_env(cfg.env, **cfg.encoder_sizes())
        self.learner = DoubleDQN(self.shape, cfg)
        if cfg.discount == "time" and cfg.normalise_time_q:
            mean_dt = 1.0 / base.traffic.total_rate
            self.learner.reward_norm = float(1.0 - cfg.gamma ** (mean_dt / cfg.tau_s))
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.episode = 0
        self.rows: list[dict[str, Any]] = []
        self._baseline: dict[float, list[dict[str, Any]]] = {}
        self.last_eval: dict[str, float] = {}
        self.resume = resume
        self.tb = ScalarLog(None, "teacher")  # opened in run() (no-op unless cfg.tensorboard)
        if resume:
            self._resume()

    # ------------------------------------------------------------------ persistence
    def _payload(self) -> dict[str, Any]:
        return {
            "encoder_shape": self.shape.to_json(),
            "n_actions": self.cfg.env.n_actions,
            "env_config": self.cfg.env.model_dump(),
            "teacher_config": self.cfg.model_dump(mode="json"),
            "online": self.learner.online.state_dict(),
            "target": self.learner.target.state_dict(),
            "optimizer": self.learner.optimizer.state_dict(),
            "train_state": {
                "step": self.step,
                "episode": self.episode,
                "updates": self.learner.updates,
                "np_rng": self.rng.bit_generator.state,
                "torch_rng": torch.random.get_rng_state(),
                "last_eval": dict(self.last_eval),
            },
        }

    def save(self) -> Path:
        """Write ``step_<step>.pt`` atomically and prune old step files."""
        p = save_checkpoint(step_path(self.out, self.step), self._payload())
        old = sorted(self.out.glob("step_*.pt"))[: -self.cfg.keep_checkpoints]
        for f in old:
            f.unlink(missing_ok=True)
        return p

    def _resume(self) -> None:
        ck = load_checkpoint(self.out)
        check_compatible(ck, self.shape, self.cfg.env.n_actions)
        if ck["env_config"] != self.cfg.env.model_dump():
            raise CheckpointError(
                f"checkpoint {ck['path']} was trained on another env config; resume with the "
                "same case, catalog and reward weights (or start a new --out folder)"
            )
        load_state(self.learner.online, ck["online"], ck["path"])
        load_state(self.learner.target, ck["target"], ck["path"])
        self.learner.optimizer.load_state_dict(ck["optimizer"])
        ts = ck["train_state"]
        self.step, self.episode = int(ts["step"]), int(ts["episode"])
        self.learner.updates = int(ts["updates"])
        self.rng.bit_generator.state = ts["np_rng"]
        torch.random.set_rng_state(ts["torch_rng"])
        self.last_eval = dict(ts.get("last_eval", {}))
        log_path = self.out / "train_log.csv"
        if log_path.is_file():
            with open(log_path) as fh:
                self.rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= self.step]
        log.info("resumed from %s at step %d", ck["path"], self.step)

    def _write_log(self) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(LOG_COLUMNS))
        w.writeheader()
        for r in self.rows:
            w.writerow({k: r.get(k, "") for k in LOG_COLUMNS})
        _atomic_text(self.out / "train_log.csv", buf.getvalue())

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Greedy teacher vs the baseline on the held-out ``eval_seeds`` at every training load."""
        cfg = self.cfg
        pol = TeacherPolicy(self.learner.online, cfg.env)
        t_v, t_b, b_v, b_b = [], [], [], []
        for load in cfg.loads:
            env_cfg: EnvConfig = cfg.env_for_load(load)
            if cfg.eval_scenario is not None:
                raw = env_cfg.model_dump()
                raw["traffic"]["scenario"] = cfg.eval_scenario
                env_cfg = EnvConfig.model_validate(raw)
            if load not in self._baseline:
                base = make_policy(cfg.eval_baseline)
                self._baseline[load] = [
                    run_policy(base, env_cfg, seed=s, requests=cfg.eval_requests)["metrics"]
                    for s in cfg.eval_seeds
                ]
            for s, bm in zip(cfg.eval_seeds, self._baseline[load], strict=True):
                m = run_policy(pol, env_cfg, seed=s, requests=cfg.eval_requests)["metrics"]
                t_v.append(m["weighted_value_ratio"])
                t_b.append(m["blocking_priority_le1"])
                b_v.append(bm["weighted_value_ratio"])
                b_b.append(bm["blocking_priority_le1"])
        self.learner.online.train()
        self.last_eval = {
            "eval_value_ratio": float(np.mean(t_v)),
            "eval_baseline_value_ratio": float(np.mean(b_v)),
            "eval_blocking_le1": float(np.mean(t_b)),
            "eval_baseline_blocking_le1": float(np.mean(b_b)),
        }
        return self.last_eval

    # ------------------------------------------------------------------ training
    def run(self) -> TrainResult:
        cfg = self.cfg
        prev_threads = torch.get_num_threads()
        prev_det = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(cfg.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            with contextlib.ExitStack() as stack:
                self.tb = stack.enter_context(self._open_tb(stack))
                return self._run()
        finally:
            torch.set_num_threads(prev_threads)
            torch.use_deterministic_algorithms(prev_det)

    def _open_tb(self, stack: contextlib.ExitStack) -> ScalarLog:
        """The TensorBoard run ``cfg.tensorboard/teacher``: staged (renamed into place when
        the training finishes, removed when it fails); a resumed run appends in place."""
        logdir, path = self.cfg.tensorboard, None
        if logdir is not None and not self.resume:
            run_dir = Path(logdir) / "teacher"
            path = stack.enter_context(staged_dir(run_dir, overwrite=True, flag="--tensorboard"))
        return ScalarLog(logdir, "teacher", path=path)

    def _run(self) -> TrainResult:  # noqa: C901 - the vectorised training loop, one frame
        cfg, learner, rng = self.cfg, self.learner, self.rng
        N = cfg.n_envs
        buffer: ReplayBuffer | None = None
        t0 = time.perf_counter()
        start_step = self.step
        losses: list[float] = []
        qs: list[float] = []
        ep_rewards: list[float] = []
        refill_until = self.step + cfg.learning_starts if self.step else cfg.learning_starts
        ckpt = step_path(self.out, self.step)
        tau_s = cfg.tau_s if cfg.discount == "time" else None
        # Per vector slot: env, its observation, replay slot, episode reward and explorer.
        envs: list[PowerCommEnv | None] = [None] * N
        obs: list[Any] = [None] * N
        slots = [0] * N
        ep_rew = [0.0] * N
        rngs: list[np.random.Generator] = [rng] * N

        def start_episode(i: int) -> None:
            nonlocal buffer
            env = self.env_pool[i][cfg.loads[self.episode % len(cfg.loads)]]
            o, _ = env.reset(seed=cfg.train_seed(self.episode))
            rngs[i] = cfg.explore_rng(self.episode)
            self.episode += 1
            if buffer is None:
                buffer = ReplayBuffer(cfg.buffer_size, o, streams=N)
            envs[i], obs[i], ep_rew[i] = env, o, 0.0
            slots[i] = buffer.add_obs(o, continues=False, stream=i)

        def q_fn(idx: list[int]) -> np.ndarray:
            return learner.greedy_q(collate([obs[i] for i in idx]))

        def crossed(prev: int, now: int, every: int) -> bool:
            return every > 0 and now // every > prev // every

        demos: DemoSet | None = None
        margins: list[float] = []
        if cfg.demo_policy:
            demos = collect_demonstrations(cfg, self.env_pool[0])
            _atomic_text(self.out / "demos.json", json.dumps(demos.summary(), indent=1))
            if self.step == 0:  # a resumed run was pre-trained before its first checkpoint
                for _ in range(cfg.demo_pretrain):
                    o, act, r, disc, o2 = demos.buffer.sample_n(
                        cfg.batch_size, rng, n_step=cfg.n_step, gamma=cfg.gamma, tau_s=tau_s
                    )
                    out = learner.update(o, act, r, o2, disc, demo_B=np.ones(len(act), bool))
                    margins.append(out["margin"])
                log.info(
                    "pre-trained %d steps on %d demonstrations",
                    cfg.demo_pretrain,
                    demos.transitions,
                )
        n_demo = round(cfg.batch_size * cfg.demo_ratio) if demos is not None else 0

        def sample() -> tuple[Any, ...]:
            assert buffer is not None
            o, act, r, disc, o2 = buffer.sample_n(
                cfg.batch_size - n_demo, rng, n_step=cfg.n_step, gamma=cfg.gamma, tau_s=tau_s
            )
            if not n_demo:
                return o, act, r, o2, disc, None
            assert demos is not None
            do, dact, dr, ddisc, do2 = demos.buffer.sample_n(
                n_demo, rng, n_step=cfg.n_step, gamma=cfg.gamma, tau_s=tau_s
            )
            flag = np.r_[np.zeros(cfg.batch_size - n_demo, bool), np.ones(n_demo, bool)]
            return (
                cat_batches(o, do),
                np.r_[act, dact],
                np.r_[r, dr],
                cat_batches(o2, do2),
                np.r_[disc, ddisc],
                flag,
            )

        for i in range(N):
            start_episode(i)
        assert buffer is not None
        while self.step < cfg.steps:
            n = min(N, cfg.steps - self.step)
            for every in (cfg.log_every, cfg.eval_every, cfg.checkpoint_every):
                if every:  # land on every log/eval/checkpoint step exactly
                    n = min(n, every - self.step % every)
            eps = cfg.epsilon(self.step)
            acts = epsilon_greedy_batch(
                q_fn, [obs[i]["action_mask"] for i in range(n)], eps, rngs[:n]
            )
            prev = self.step
            for i in range(n):
                env = envs[i]
                assert env is not None
                o, reward, term, trunc, info = env.step(acts[i])
                buffer.set_step(slots[i], acts[i], float(reward), env.now - float(info["time_s"]))
                slots[i] = buffer.add_obs(o, continues=True, stream=i)
                obs[i] = o
                ep_rew[i] += float(reward)
                if term or trunc:
                    ep_rewards.append(ep_rew[i])
                    start_episode(i)
            self.step += n
            s = self.step
            n_updates = s // cfg.train_every - prev // cfg.train_every
            if s >= refill_until and buffer.n_transitions >= cfg.batch_size:
                for _ in range(n_updates):
                    o, act, r, o2, disc, flag = sample()
                    out = learner.update(o, act, r, o2, disc, demo_B=flag)
                    losses.append(out["loss"])
                    qs.append(out["q_mean"])
                    if flag is not None:
                        margins.append(out["margin"])
            if crossed(prev, s, cfg.eval_every):
                self.evaluate()
                self._log_row(t0, start_step, eps, losses, qs, margins, ep_rewards, with_eval=True)
            elif crossed(prev, s, cfg.log_every):
                self._log_row(t0, start_step, eps, losses, qs, margins, ep_rewards, with_eval=False)
            if crossed(prev, s, cfg.checkpoint_every):
                ckpt = self.save()
            if self.on_progress is not None and crossed(prev, s, 100):
                self.on_progress(s, {"epsilon": eps, "loss": np.mean(losses[-50:] or [0])})
        # Episodes cut by the end of the run are not continued: a resumed run starts fresh
        # ones (their ids were already taken).
        if not step_path(self.out, self.step).is_file():
            ckpt = self.save()
        self._write_log()
        try:
            from pcnalloc.teacher.plots import learning_curve

            learning_curve(self.rows, self.out / "learning_curve.png")
        except Exception as err:  # plotting must never lose a finished training
            log.warning("learning curve not written: %s", err)
        return TrainResult(
            step=self.step,
            episodes=self.episode,
            updates=learner.updates,
            checkpoint=ckpt,
            wall_s=time.perf_counter() - t0,
            rows=self.rows,
            last_eval=dict(self.last_eval),
            demos=demos.summary() if demos is not None else None,
        )

    def _log_row(
        self,
        t0: float,
        start_step: int,
        eps: float,
        losses: list[float],
        qs: list[float],
        margins: list[float],
        ep_rewards: list[float],
        *,
        with_eval: bool,
    ) -> None:
        wall = time.perf_counter() - t0
        row: dict[str, Any] = {
            "step": self.step,
            "episode": self.episode,
            "epsilon": round(eps, 4),
            "loss": round(float(np.mean(losses[-200:])), 6) if losses else "",
            "q_mean": round(float(np.mean(qs[-200:])), 4) if qs else "",
            "margin": round(float(np.mean(margins[-200:])), 5) if margins else "",
            "episode_reward": round(ep_rewards[-1], 2) if ep_rewards else "",
            "steps_per_s": round((self.step - start_step) / max(wall, 1e-9), 1),
            "wall_s": round(wall, 1),
        }
        if with_eval:
            row.update({k: round(v, 5) for k, v in self.last_eval.items()})
        self.rows.append(row)
        self._write_log()
        self.tb.add(self.step, row, skip=("step",))
        log.info("step %d: %s", self.step, row)


def train_teacher(
    cfg: TeacherConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    on_progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train (or resume) a teacher; see :class:`Trainer`."""
    return Trainer(cfg, out_dir, resume=resume, on_progress=on_progress).run()
