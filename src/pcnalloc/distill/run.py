"""One distillation job: train a student, measure its fidelity, optionally run the ablation.

Writes into ``out_dir``: ``student.pt``, ``history.csv``, ``curves.png``, ``fidelity.json`` and,
with the ablation, ``ablation/<variant>/`` (same files per variant) plus ``ablation.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pcnalloc.baselines.base import Policy
from pcnalloc.config import EnvConfig
from pcnalloc.distill.config import DistillConfig
from pcnalloc.distill.data import LibraryData
from pcnalloc.distill.fidelity import ablation_configs, closed_loop, held_out_fidelity
from pcnalloc.distill.policy import StudentPolicy
from pcnalloc.distill.students import (
    ARCHS,
    BLIND,
    DEFAULT_ARCH,
    EDGE,
    INPUT_KEYS,
    MLPStudent,
    input_key_for,
)
from pcnalloc.distill.trainer import DistillResult, train_student
from pcnalloc.errors import ConfigError
from pcnalloc.fileio import write_atomic

log = logging.getLogger(__name__)

FIDELITY_FILE = "fidelity.json"
ABLATION_FILE = "ablation.json"


class Reporter(Protocol):
    """Progress sink: ``stage`` opens a unit of work of ``total`` steps, ``advance`` moves it."""

    def stage(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1, description: str | None = None) -> None: ...


class _Silent:
    def stage(self, description: str, total: int) -> None:
        return None

    def advance(self, n: int = 1, description: str | None = None) -> None:
        return None


def library_env_configs(metadata: dict[str, Any]) -> list[EnvConfig]:
    """One env config per (case, load) the library was rolled out on (base config otherwise)."""
    base = metadata.get("env_config") or {}
    cases = metadata.get("cases") or [base.get("network", {}).get("case", "case30")]
    loads = metadata.get("loads") or [base.get("traffic", {}).get("load", 1.0)]
    out = []
    for case in cases:
        for load in loads:
            d = json.loads(json.dumps(base))
            d.setdefault("network", {})["case"] = case
            d.setdefault("traffic", {})["load"] = float(load)
            out.append(EnvConfig.model_validate(d))
    return out


def _policies(model: MLPStudent, env: EnvConfig | None, teacher: Any, tag: str) -> list[Policy]:
    if model.kind != EDGE and not hasattr(teacher, "state_and_q"):
        log.warning("a latent student needs the teacher encoder for closed-loop runs; skipped")
        return []
    from pcnalloc.rules.guard import GuardedPolicy

    return [
        StudentPolicy(model, env, masked=False, teacher=teacher, name=f"{tag}"),
        StudentPolicy(model, env, masked=True, teacher=teacher, name=f"{tag}-masked"),
        # raw proposals behind the rule engine: what it intercepts is the deployed cost of
        # hard-violating proposals (metrics "intercepted")
        GuardedPolicy(StudentPolicy(model, env, masked=False, teacher=teacher, name=tag)),
    ]


def _public(report: dict[str, Any]) -> dict[str, Any]:
    out = dict(report)
    if isinstance(out.get("closed_loop"), dict):
        out["closed_loop"] = {k: v for k, v in out["closed_loop"].items() if not k.startswith("_")}
    return out


def run_distillation(
    library: str | Path,
    *,
    kind: str,
    cfg: DistillConfig,
    out_dir: str | Path,
    teacher: Policy | None = None,
    eval_seeds: Sequence[int] = (),
    requests: int = 1000,
    ablation: bool = False,
    hidden: Sequence[int] | None = None,
    arch: str | None = None,
    env_configs: Sequence[EnvConfig] | None = None,
    reporter: Reporter | None = None,
    tb_run: str | None = None,
) -> dict[str, Any]:
    """Distil, report fidelity, and (``ablation=True``) train and report the three variants.

    Args:
        library: trajectory library folder or file.
        kind: ``edge`` or ``latent``.
        cfg: distillation config of the main run.
        out_dir: output folder.
        teacher: reference policy for closed-loop runs (None: held-out figures only). A latent
            student also uses it to encode observations (it needs ``state_and_q``).
        eval_seeds: env seeds of the closed-loop episodes (empty: no closed loop).
        requests: decisions per closed-loop episode.
        ablation: also train KL-only, KL+hard and KL+hard+soft on the same split and seed.
        hidden: student hidden widths (default per kind).
        arch: ``mlp``, ``shared`` (see :class:`SharedHeadStudent`) or ``mlp-blind`` (the edge
            MLP without the per-action validity flags); None = ``DEFAULT_ARCH`` of the kind.
        env_configs: closed-loop envs (default: every case × load of the library).
        reporter: progress sink (see :class:`Reporter`).
        tb_run: TensorBoard run of the main student under ``cfg.tensorboard`` (default
            ``student/<out_dir name>``; a caller writing into a staged temp names the final
            folder); the ablation variants go under it, ``<run>/ablation/<variant>``.

    Returns:
        The fidelity report; with ``ablation``, ``report["ablation"]`` holds one row per variant.
    """
    rep = reporter or _Silent()
    if kind not in INPUT_KEYS:
        raise ConfigError(f"unknown student kind {kind!r}; accepted: {', '.join(INPUT_KEYS)}")
    arch = arch or DEFAULT_ARCH[kind]
    if arch not in ARCHS:
        raise ConfigError(f"unknown student arch {arch!r}; accepted: {', '.join(ARCHS)}")
    if arch == BLIND and kind != EDGE:
        raise ConfigError(f"arch {BLIND!r} is an edge student; got student {kind!r}")
    out = Path(out_dir)
    data = LibraryData(library, input_key=input_key_for(kind, arch), cfg=cfg)
    envs = (
        list(env_configs) if env_configs is not None else library_env_configs(data.reader.metadata)
    )
    env0 = envs[0] if envs else None
    seeds = [int(s) for s in eval_seeds]
    n_loop = len(envs) * len(seeds) * requests

    run = tb_run or f"student/{out.name}"

    def fit(c: DistillConfig, where: Path, label: str, tb: str) -> DistillResult:
        rep.stage(f"{label}: epochs", c.epochs)

        def on_epoch(row: dict[str, Any]) -> None:
            rep.advance(
                1,
                f"{label}: val loss {row['val_total']:.4f} agree {row['val_top1_agreement']:.4f}",
            )

        return train_student(
            data,
            kind=kind,
            cfg=c,
            out_dir=where,
            hidden=hidden,
            arch=arch,
            on_epoch=on_epoch,
            tb_run=tb,
        )

    def report_for(res: DistillResult, c: DistillConfig, t_res: Any) -> dict[str, Any]:
        r: dict[str, Any] = {
            "student": kind,
            "arch": arch,
            "input_key": data.input_key,
            "library": str(library),
            "library_rows": data.num_rows,
            "library_metadata_sha256": data.metadata_sha256,
            "train_rows": res.train_rows,
            "epochs_run": len(res.history),
            "best_epoch": res.best_epoch,
            "train_rows_per_s": res.rows_per_s,
            "lambda_hard": c.lambda_hard,
            "lambda_soft": c.lambda_soft,
            "tau": c.tau,
            "held_out": held_out_fidelity(res.model, data, c),
        }
        pols = _policies(res.model, env0, teacher, f"student-{kind}") if seeds else []
        if pols and (teacher is not None or t_res is not None):
            rep.stage(
                f"closed loop ({len(pols) + (t_res is None)} policies)",
                n_loop * (len(pols) + (t_res is None)),
            )
            r["closed_loop"] = closed_loop(
                pols,
                teacher,
                envs,
                seeds=seeds,
                requests=requests,
                teacher_results=t_res,
                progress=rep.advance,
            )
        return r

    main = fit(cfg, out, kind, run)
    report = report_for(main, cfg, None)
    t_res = (report.get("closed_loop") or {}).get("_teacher_results")
    write_atomic(out / FIDELITY_FILE, json.dumps(_public(report), indent=2) + "\n")
    if ablation:
        rows = []
        for name, c in ablation_configs(cfg):
            if c == cfg:
                row = dict(report)
            else:
                sub = name.replace("+", "_")
                res = fit(c, out / "ablation" / sub, name, f"{run}/ablation/{sub}")
                row = report_for(res, c, t_res)
            row["variant"] = name
            rows.append(_public(row))
        report["ablation"] = rows
        write_atomic(out / ABLATION_FILE, json.dumps(rows, indent=2) + "\n")
    return _public(report)


__all__ = ["ABLATION_FILE", "FIDELITY_FILE", "Reporter", "library_env_configs", "run_distillation"]
