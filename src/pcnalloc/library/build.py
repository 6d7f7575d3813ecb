"""Roll the teacher out and write the trajectory library (DESIGN §6).

Work is split into :class:`RolloutTask` items — ``lockstep`` episodes of one (case, load)
played side by side so the teacher scores them in one batched forward pass — and mapped over
an executor (``map_ordered(fn, items)``: the local process pool by default, Ray later). Each
task seeds its env and its exploration from its own episode seeds, and the grouping depends
only on the plan, so the same seeds give the same rows whatever the worker count.

Teachers (``teacher=``): a DQN checkpoint (Q-values are the soft targets, its 128-d state is
recorded) or a classical policy spec from :func:`pcnalloc.baselines.registry.make_policy`
(``cspf-pe``, ``cspf-pe:4``, ``trunk@reserve=0.1``, ``lcr``, ``ksp-ff`` …) for algorithm
distillation. A classical teacher has no Q-values and no latent state: when the policy exposes
per-action ``scores(obs)`` whose valid argmax is its action, those are recorded as ``q_values``
(soft targets); otherwise ``q_values`` is one-hot, 1 at the chosen action and 0 elsewhere, so
the distillation target softmax(Q/τ) over valid actions puts 1/(1 + (n−1)·e^(−1/τ)) on the
chosen action — exactly one-hot at the default τ = 0.001, label-smoothed for τ of order 1.
Its ``state`` column is zeros (a latent student cannot learn from it). A classical policy runs
on the env its ``env_overrides`` ask for (``cspf-pe`` alone means K = 16; ``cspf-pe:4`` keeps
the DQN's K = 4 layout). Every row's ``source`` names the teacher (``dqn:<sha prefix>`` or the
spec).

``hard`` is h(s, a) from the full rule set: the physical hard rules of the candidate kernel or
any critical/hard rule of the env's rule engine (a user rule file in ``EnvConfig.rules``
included), so h = 1 exactly where ``action_mask`` = 0 (reject excepted).

Episode seeds default to ``LIBRARY_SEED_BASE + i`` (i = episode index within a case and
load), disjoint from training seeds (≥ 1,000,000) and the usual evaluation seeds (< 100,000).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.config import EnvConfig
from pcnalloc.core.policy import bind, scores_of
from pcnalloc.core.seeds import LIBRARY_LOCKSTEP, LIBRARY_SEED_BASE
from pcnalloc.library.oracle import ORACLE_NAMES, MilpOracle, parse_oracle_spec
from pcnalloc.library.schema import LibraryError, LibrarySpec, encode_metadata
from pcnalloc.library.writer import LibraryWriter, RowBlock, write_manifest

log = logging.getLogger(__name__)


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
    policy: str = ""
    """classical teacher spec (``make_policy``); empty = the DQN ``checkpoint``."""
    source: str = "dqn"
    """``source`` tag of the rows."""


_TEACHERS: dict[str, Any] = {}


def _teacher(path: str) -> Any:
    """Per-process cache: each worker loads a checkpoint once."""
    if path not in _TEACHERS:
        from pcnalloc.teacher.policy import TeacherPolicy

        _TEACHERS[path] = TeacherPolicy.load(path)
    return _TEACHERS[path]


TEACHER_ALIASES: dict[str, str] = {"trunk-reservation": "trunk"}
"""Teacher names accepted besides the registry's policy names."""


def hard_labels(ev: Any) -> np.ndarray:
    """h(s, ·) int8 (A,): a physical hard rule or a critical/hard rule-engine rule is broken."""
    h = ev.hard_AR.any(axis=1)
    rv = getattr(ev, "rule_violations_AR", None)
    if rv is not None:
        h = h | np.asarray(rv, dtype=bool).any(axis=1)
    h = h & (np.asarray(ev.mask_A) == 0)  # what the mask forbids; reject stays allowed
    return h.astype(np.int8)


def _policy_targets(policy: Any, obs: dict[str, Any], action: int, A: int) -> np.ndarray:
    """Soft targets of a classical teacher: its scores if consistent with ``action``, else
    one-hot at ``action`` (see the module docstring)."""
    s = scores_of(policy, obs)
    if s is not None:
        q = s.astype(np.float32).reshape(-1)
        mask = obs["action_mask"] > 0
        if q.shape == (A,) and np.isfinite(q[mask]).all():
            if int(np.argmax(np.where(mask, q, -np.inf))) == action:
                return q
    q = np.zeros(A, np.float32)
    q[action] = 1.0
    return q


def rollout_policy_task(task: RolloutTask) -> RowBlock:
    """Play the task's episodes with a classical teacher; rows as :func:`rollout_task`."""
    from pcnalloc.baselines.registry import make_policy
    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.library.schema import STATE_DIM

    cfg = EnvConfig.model_validate(task.env_config)
    M, T, A = len(task.seeds), task.requests, cfg.n_actions
    rows: dict[str, list[Any]] = {}
    net = cat = None
    for seed, eid in zip(task.seeds, task.episode_ids, strict=True):
        env = PowerCommEnv(cfg, observation="compact", network=net, catalog=cat)
        net, cat = env.net, env.catalog
        policy = (
            MilpOracle.from_spec(task.policy, task.requests)
            if task.policy.partition(":")[0].partition("@")[0] in ORACLE_NAMES
            else make_policy(task.policy)
        )
        bind(policy, env)
        policy.reset(seed)
        rng = np.random.default_rng([seed, eid])
        obs, _ = env.reset(seed=seed)
        for _ in range(T):
            ev = env.current_evaluation
            mask = obs["action_mask"]
            greedy = int(policy.act(obs))
            a = greedy
            if task.explore > 0 and rng.random() < task.explore:
                valid = np.flatnonzero(mask)
                a = int(valid[rng.integers(valid.size)])
            for k, v in (
                ("compact", obs["compact"]),
                ("q_values", _policy_targets(policy, obs, greedy, A)),
                ("action_mask", mask),
                ("hard", hard_labels(ev)),
                ("soft", ev.soft_AQ),
                ("action", a),
                ("greedy", a == greedy),
            ):
                rows.setdefault(k, []).append(np.array(v, copy=True))
            obs, r, _, _, _ = env.step(a)
            rows.setdefault("reward", []).append(r)
    out: RowBlock = {k: np.stack(v) for k, v in rows.items()}
    out["action"] = out["action"].astype(np.int16)
    out["greedy"] = out["greedy"].astype(np.int8)
    out["reward"] = out["reward"].astype(np.float32)
    out["state"] = np.zeros((M * T, STATE_DIM), np.float32)
    return out | _episode_columns(task, cfg, M, T)


def rollout_task(task: RolloutTask) -> RowBlock:
    """Play the task's episodes; return their rows (episode-major, then step order)."""
    import torch

    if task.policy:
        return rollout_policy_task(task)

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
                out["hard"][m, t] = hard_labels(ev)
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
    return rows | _episode_columns(task, cfg, M, T)


def _episode_columns(task: Any, cfg: Any, M: int, T: int) -> RowBlock:
    """The per-row bookkeeping columns of M episodes × T steps (episode, seed, step, …)."""
    return {
        "episode_id": np.repeat(np.array(task.episode_ids, np.int64), T),
        "seed": np.repeat(np.array(task.seeds, np.int64), T),
        "step": np.tile(np.arange(T, dtype=np.int32), M),
        "case": cfg.network.case,
        "load": np.full(M * T, cfg.traffic.load, np.float32),
        "source": task.source,
    }


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
    lockstep: int = LIBRARY_LOCKSTEP,
    scenario: str | None = None,
    policy: str = "",
    source: str = "dqn",
    first_episode_id: int = 0,
) -> list[RolloutTask]:
    """Split (cases × loads × episodes) into lockstep tasks; episode ids follow plan order
    from ``first_episode_id``; ``scenario`` (a family name or YAML file) sets
    ``traffic.scenario`` as ``pcnalloc simulate --scenario`` does."""
    tasks: list[RolloutTask] = []
    eid = first_episode_id
    for case in cases:
        for load in loads:
            d = base.model_dump()
            d["network"]["case"] = case
            d["traffic"]["load"] = float(load)
            if scenario is not None:
                d["traffic"]["scenario"] = scenario
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
                        policy=policy,
                        source=source,
                    )
                )
                eid += n
    return tasks


CLASSICAL_TEACHERS: tuple[str, ...] = ("cspf-pe", "trunk", "lcr", "ksp-ff", "sp-ff", "llp")
"""Classical teacher names (any :func:`make_policy` spec of these, e.g. ``cspf-pe:4``)."""


@dataclass(frozen=True)
class Teacher:
    """A resolved teacher: the DQN checkpoint or a classical policy spec.

    Attributes:
        kind: ``dqn``, ``classical`` or ``oracle`` (the hindsight MILP, see ``library.oracle``).
        checkpoint: the checkpoint file (dqn) or "".
        policy: the policy spec (classical) or "".
        env: the env config it acts on (the checkpoint's, or ``env`` + the policy's overrides).
        sha256: checkpoint sha256 (dqn) or sha256 of the spec string (classical).
        state_dim: width of the ``state`` column.
        source: the rows' ``source`` tag.
    """

    kind: str
    checkpoint: str
    policy: str
    env: EnvConfig
    sha256: str
    state_dim: int
    source: str


def resolve_teacher(teacher: str | Path, env: EnvConfig | None = None) -> Teacher:
    """A checkpoint path (``.pt`` file or training folder) or a classical policy spec.

    Raises:
        LibraryError: an unknown teacher kind (names the accepted ones).
        CheckpointError: an unreadable checkpoint.
    """
    import hashlib

    from pcnalloc.config import env_config
    from pcnalloc.library.schema import STATE_DIM

    text = str(teacher)
    if not _is_path(text):
        from pcnalloc.baselines.registry import make_policy
        from pcnalloc.errors import UnknownPolicyError

        head, sep, rest = text.partition("@")
        name, colon, k = head.partition(":")
        name = TEACHER_ALIASES.get(name, name)
        spec = name + colon + k + sep + rest
        if name in ORACLE_NAMES:
            from pcnalloc.baselines.offline import window_config
            from pcnalloc.errors import ConfigError

            try:
                opts = parse_oracle_spec(spec)
            except ConfigError as err:
                raise LibraryError(str(err)) from None
            return Teacher(
                kind="oracle",
                checkpoint="",
                policy=spec,
                env=window_config(env or env_config(), k_paths=opts["k"]),
                sha256=hashlib.sha256(spec.encode()).hexdigest(),
                state_dim=STATE_DIM,
                source=spec,
            )
        if name not in CLASSICAL_TEACHERS:
            raise LibraryError(
                f"unknown teacher kind {text!r}; accepted: "
                + ", ".join([*CLASSICAL_TEACHERS, *TEACHER_ALIASES, *ORACLE_NAMES])
                + " (with optional :K and @key=value) or a teacher checkpoint path"
            )
        try:
            pol = make_policy(spec)
        except UnknownPolicyError as err:  # pragma: no cover - names checked above
            raise LibraryError(str(err)) from None
        d = (env or env_config()).model_dump()
        d.update(pol.env_overrides)
        cfg = EnvConfig.model_validate(d)
        return Teacher(
            kind="classical",
            checkpoint="",
            policy=spec,
            env=cfg,
            sha256=hashlib.sha256(spec.encode()).hexdigest(),
            state_dim=STATE_DIM,
            source=spec,
        )
    from pcnalloc.teacher.checkpoint import file_sha256, load_checkpoint

    ck = load_checkpoint(teacher)
    sha = file_sha256(ck["path"])
    return Teacher(
        kind="dqn",
        checkpoint=str(ck["path"]),
        policy="",
        env=EnvConfig.model_validate(ck["env_config"]),
        sha256=sha,
        state_dim=int(ck["encoder_shape"]["state_dim"]),
        source=f"dqn:{sha[:12]}",
    )


def _env_fingerprint(cfg: EnvConfig) -> dict[str, Any]:
    """The env fields rows depend on beyond (case, load, scenario): must agree across teachers."""
    d = cfg.model_dump()
    d["network"].pop("case", None)
    d["traffic"].pop("load", None)
    d["traffic"].pop("scenario", None)
    d.pop("episode_requests", None)
    return d


def _is_path(t: str | Path) -> bool:
    p = Path(str(t))
    return p.exists() or "/" in str(t) or p.suffix == ".pt"


def build_library(  # noqa: C901 - the build's options checked in order before any work
    teacher: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    *,
    cases: Sequence[str],
    loads: Sequence[float],
    episodes: int,
    requests: int | None = None,
    explore: float = 0.05,
    executor: Any = None,
    seed_base: int = LIBRARY_SEED_BASE,
    lockstep: int = LIBRARY_LOCKSTEP,
    progress: Callable[[int], None] | None = None,
    scenario: str | Sequence[str | None] | None = None,
    env: EnvConfig | None = None,
) -> BuildResult:
    """Roll the teacher(s) out and write ``out_dir/part-00000.parquet`` + ``_manifest.json``.

    Args:
        teacher: checkpoint file or training folder (its latest checkpoint), or a classical
            policy spec (``cspf-pe``, ``trunk@reserve=0.1``, ``lcr``, ``ksp-ff`` …); a list of
            them builds one multi-teacher library (each teacher plays every case × load ×
            episode on the same seeds; rows tagged by ``source``, episode ids distinct).
        out_dir: library folder (created).
        cases, loads: grid cases and offered loads; ``episodes`` episodes per pair.
        requests: decisions per episode (default: the first teacher env's ``episode_requests``).
        explore: share of uniformly random valid actions (recorded with ``greedy = 0``).
        executor: object with ``map_ordered(fn, items)``; None = serial in this process.
        seed_base: env seed of the first episode of each (case, load).
        lockstep: episodes per task, scored in one batched forward pass.
        progress: called with the number of rows just written.
        scenario: scenario family or YAML file set as ``traffic.scenario`` (None: the env's);
            a list gives one per teacher (scenario-specific teachers for multi-policy
            distillation): teacher i plays scenario i and its rows' ``source`` is
            ``<scenario>/<teacher source>``.
        env: base env config of classical teachers (default: the first checkpoint's env, else
            the packaged defaults).

    Raises:
        LibraryError: bad arguments, an unknown teacher kind, or teachers whose env configs
            disagree (different K, L, catalog, rules … — one library needs one row layout).
        CheckpointError: an unreadable teacher.
    """
    if episodes < 1 or not cases or not loads:
        raise LibraryError(
            f"need ≥ 1 episode, case and load; got episodes={episodes}, cases={list(cases)}, "
            f"loads={list(loads)}"
        )
    if not 0 <= explore <= 1:
        raise LibraryError(f"explore must be in [0, 1], got {explore}")
    specs = [teacher] if isinstance(teacher, str | Path) else list(teacher)
    if not specs:
        raise LibraryError("need at least one teacher")
    dqn = [resolve_teacher(t) for t in specs if _is_path(t)]
    base_env = env or (dqn[0].env if dqn else None)
    teachers = [resolve_teacher(t, base_env) for t in specs]
    base = teachers[0].env
    fp = _env_fingerprint(base)
    for t in teachers[1:]:
        if _env_fingerprint(t.env) != fp:
            a, b = _env_fingerprint(t.env), fp
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise LibraryError(
                f"teachers {teachers[0].source!r} and {t.source!r} act on incompatible env "
                f"configs (fields {diff} differ); one library needs one row layout — give "
                "classical teachers a matching :K (e.g. cspf-pe:4) or the same env"
            )
    per_teacher = scenario is not None and not isinstance(scenario, str | Path)
    scen: list[str | None] = (
        [None if x is None else str(x) for x in scenario]  # type: ignore[union-attr]
        if per_teacher
        else [None if scenario is None else str(scenario)] * len(teachers)
    )
    if len(scen) != len(teachers):
        raise LibraryError(
            f"got {len(scen)} scenarios for {len(teachers)} teachers; give one scenario, or "
            "one per teacher"
        )
    from pcnalloc.config import load_scenario

    for t, x in zip(teachers, scen, strict=True):
        if t.kind == "oracle" and x is not None:
            raise LibraryError(
                f"teacher {t.source!r} (the hindsight MILP) plays with grid events off; it "
                "takes no scenario"
            )
    for x in dict.fromkeys(x for x in scen if x is not None):
        load_scenario(x)  # unknown names fail here (ConfigError), before any work
    if per_teacher:
        teachers = [
            replace(t, source=f"{x}/{t.source}" if x is not None else t.source)
            for t, x in zip(teachers, scen, strict=True)
        ]
        dup = sorted(
            {t.source for t in teachers if [u.source for u in teachers].count(t.source) > 1}
        )
        if dup:
            raise LibraryError(f"teacher × scenario pairs repeat: {dup}; give each pair once")
    n_req = requests or base.episode_requests
    spec = LibrarySpec.from_env_config(base, state_dim=teachers[0].state_dim)
    tasks: list[RolloutTask] = []
    for i, (t, x) in enumerate(zip(teachers, scen, strict=True)):
        tasks += plan_tasks(
            t.checkpoint,
            t.env,
            cases=cases,
            loads=loads,
            episodes=episodes,
            requests=n_req,
            explore=explore,
            seed_base=seed_base,
            lockstep=lockstep,
            scenario=x,
            policy=t.policy,
            source=t.source,
            first_episode_id=i * episodes * len(cases) * len(loads),
        )
    sha = teachers[0].sha256
    ck_path = teachers[0].checkpoint or teachers[0].policy
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
            "teacher": teachers[0].source,
            "teachers": [
                {"kind": t.kind, "source": t.source, "sha256": t.sha256, "scenario": x}
                for t, x in zip(teachers, scen, strict=True)
            ],
            "scenario": scen if per_teacher else scen[0],
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
                if len(teachers) > 1:
                    key = f"{block['source']} {key}"
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
            "episodes": episodes * len(cases) * len(loads) * len(teachers),
            "teacher_sha256": sha,
            "sources": [t.source for t in teachers],
            "scenario": scen if per_teacher else scen[0],
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
        episodes=episodes * len(cases) * len(loads) * len(teachers),
        wall_s=wall,
        spec=spec,
        per_case_load=per,
    )
