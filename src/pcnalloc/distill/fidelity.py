"""Fidelity of a distilled student: held-out agreement and violations, closed-loop value.

Held-out figures come from the test episodes of the distillation split: never trained on and
never read by model selection (early stopping and the best epoch use the validation episodes).
With ``test_fraction: 0`` they fall back to the validation episodes and ``split`` says so.
Closed-loop figures play the student and the teacher on the same env seeds with
:func:`pcnalloc.evaluate.run_policy` and compare their weighted value ratios (Σ value·grant
carried / Σ value offered). The student is played twice: raw (its own argmax; a masked
proposal is refused by the env and costs the request) and masked (argmax over valid actions,
what the deployed agent executes after rule-engine interception).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from rich.table import Table

from pcnalloc.baselines.base import Policy
from pcnalloc.config import EnvConfig
from pcnalloc.distill.config import DistillConfig
from pcnalloc.distill.data import LibraryData
from pcnalloc.distill.students import MLPStudent
from pcnalloc.distill.trainer import evaluate_rows
from pcnalloc.evaluate import run_policy

log = logging.getLogger(__name__)

ProgressFn = Callable[[int], None]


def held_out_fidelity(model: MLPStudent, data: LibraryData, cfg: DistillConfig) -> dict[str, Any]:
    """Agreement, KL, violation rates and size of ``model`` on the held-out test episodes.

    Returns:
        ``split`` (``test``, or ``val`` without a test split), ``rows``,
        ``top1_agreement`` (raw student argmax = teacher's masked argmax),
        ``top1_agreement_masked``, ``kl``, ``hard_proposal_rate`` (raw argmax has h = 1),
        ``masked_proposal_rate``, ``mean_soft_violation`` (Σ_q c at the raw argmax),
        ``teacher_mean_soft_violation``, ``loss`` terms, ``param_count``, ``param_bytes``.
    """
    losses, stats = evaluate_rows(model, data.test_batches(), cfg)
    s = stats.summary()
    held = data.test_episodes if data.fidelity_split == "test" else data.val_episodes
    return {
        "split": data.fidelity_split,
        **s,
        "kl": losses["kl"],
        "loss": losses,
        "param_count": model.param_count,
        "param_bytes": model.param_bytes,
        "held_out_episodes": len(held),
    }


def play(
    policy: Policy,
    env_configs: Sequence[EnvConfig],
    seeds: Sequence[int],
    requests: int,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """``run_policy`` results of ``policy`` on every env config × seed (same length)."""
    return [
        run_policy(policy, cfg, seed=int(s), requests=requests, progress=progress)
        for cfg in env_configs
        for s in seeds
    ]


def _summarise(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = max(len(results), 1)
    v = [r["metrics"]["weighted_value_ratio"] for r in results]
    outcomes: dict[str, int] = {}
    per_env: dict[str, list[float]] = {}
    for r in results:
        for k, c in r["metrics"]["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + int(c)
        per_env.setdefault(f"{r['case']}@{r['load']:g}", []).append(
            r["metrics"]["weighted_value_ratio"]
        )
    return {
        "policy": results[0]["policy"] if results else "",
        "mean_value_ratio": sum(v) / n,
        "value_ratio_per_env": {k: sum(x) / len(x) for k, x in per_env.items()},
        "value_ratio_per_episode": v,
        "blocking_priority_le1": sum(r["metrics"]["blocking_priority_le1"] for r in results) / n,
        "executed_hard_violations": sum(
            int(r["metrics"]["executed_hard_violations"]) for r in results
        ),
        "outcomes": outcomes,
        "intercepted": sum(int(r["metrics"].get("intercepted", 0)) for r in results),
        "decisions": sum(int(r["requests"]) for r in results),
        "policy_latency_us_p50": sum(r["timing"]["policy_latency_us_p50"] for r in results) / n,
    }


def closed_loop(
    students: Sequence[Policy],
    teacher: Policy | None,
    env_configs: Sequence[EnvConfig],
    *,
    seeds: Sequence[int],
    requests: int,
    teacher_results: Sequence[dict[str, Any]] | None = None,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Episode value of each student relative to the teacher on the same envs and seeds.

    Args:
        students: policies to compare (e.g. raw and masked variants of one student).
        teacher: the reference policy (any :class:`Policy`); may be None when
            ``teacher_results`` are given.
        env_configs: base envs (case, load); each policy's ``env_overrides`` apply on top.
        seeds: env seeds, identical for every policy and env.
        requests: decisions per episode.
        teacher_results: earlier ``play(teacher, …)`` results to reuse (same envs/seeds/length).
        progress: called with the number of decisions done.

    Returns:
        ``{"seeds", "requests", "envs", "teacher": summary, "students": {name: summary with
        "value_ratio_vs_teacher"}}``, where the ratio is the student's mean weighted value
        ratio over all episodes divided by the teacher's; the raw teacher runs are under
        ``"_teacher_results"`` for reuse (drop before writing JSON).
    """
    if teacher_results is None:
        if teacher is None:
            raise ValueError("closed_loop needs a teacher policy or teacher_results")
        teacher_results = play(teacher, env_configs, seeds, requests, progress)
    t = _summarise(teacher_results)
    out: dict[str, Any] = {
        "seeds": [int(s) for s in seeds],
        "requests": requests,
        "envs": [f"{c.network.case}@{c.traffic.load:g}" for c in env_configs],
        "teacher": t,
        "students": {},
        "_teacher_results": list(teacher_results),
    }
    base = t["mean_value_ratio"]
    for pol in students:
        s = _summarise(play(pol, env_configs, seeds, requests, progress))
        s["value_ratio_vs_teacher"] = s["mean_value_ratio"] / base if base > 0 else float("nan")
        out["students"][pol.name] = s
    return out


def fidelity_table(report: dict[str, Any], title: str = "student fidelity") -> Table:
    """Rich table of a fidelity report (held-out and, when present, closed-loop rows)."""
    h = report["held_out"]
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        (
            "student",
            f"{report['student']} {report.get('arch', '')} ({report.get('input_key', '')})",
        ),
        ("parameters / bytes (fp32)", f"{h['param_count']:,} / {h['param_bytes']:,}"),
        (
            f"held-out rows (episodes), {h.get('split', 'val')} split",
            f"{h['rows']:,} ({h['held_out_episodes']})",
        ),
        ("top-1 agreement (raw argmax)", f"{h['top1_agreement']:.4f}"),
        ("top-1 agreement (masked argmax)", f"{h['top1_agreement_masked']:.4f}"),
        (
            "top-1 agreement, clear rows (share)",
            f"{h['top1_agreement_clear']:.4f} ({h['clear_row_share']:.2%})",
        ),
        ("mean teacher-Q regret (masked argmax)", f"{h['mean_q_regret']:.2e}"),
        ("KL(teacher ‖ student)", f"{h['kl']:.4f}"),
        ("raw hard-violation proposal rate", f"{h['hard_proposal_rate']:.4%}"),
        (
            "mean soft violation (student / teacher)",
            f"{h['mean_soft_violation']:.4f} / {h['teacher_mean_soft_violation']:.4f}",
        ),
    ]
    cl = report.get("closed_loop")
    if cl:
        rows.append(
            (
                f"teacher value ratio ({len(cl['envs'])} envs × {len(cl['seeds'])} seeds)",
                f"{cl['teacher']['mean_value_ratio']:.4f}",
            )
        )
        for name, s in cl["students"].items():
            rows.append(
                (
                    f"{name} value ratio / vs teacher",
                    f"{s['mean_value_ratio']:.4f} / {s['value_ratio_vs_teacher']:.2%}",
                )
            )
            refused = s["outcomes"].get("refused", 0)
            rows.append((f"{name} refused proposals", f"{refused:,}"))
            if name.endswith("+rules"):
                rows.append((f"{name} intercepted proposals", f"{s['intercepted']:,}"))
    for k, v in rows:
        table.add_row(k, v)
    return table


def ablation_table(rows: Sequence[dict[str, Any]], title: str = "loss ablation") -> Table:
    """Rich table with one row per ablation variant (KL only, + hard, + hard + soft)."""
    table = Table(title=title)
    for col in (
        "variant",
        "λ_hard",
        "λ_soft",
        "top-1 raw",
        "top-1 masked",
        "KL",
        "hard prop.",
        "soft",
        "intercepted",
        "value/teacher raw / masked / +rules",
    ):
        table.add_column(col, justify="right" if col != "variant" else "left")
    for r in rows:
        h = r["held_out"]
        cl = r.get("closed_loop") or {}
        st = cl.get("students", {})
        vals = [f"{s['value_ratio_vs_teacher']:.2%}" for s in st.values()]
        guarded = [s for name, s in st.items() if name.endswith("+rules")]
        icpt = f"{guarded[0]['intercepted']:,} / {guarded[0]['decisions']:,}" if guarded else "–"
        table.add_row(
            r["variant"],
            f"{r['lambda_hard']:g}",
            f"{r['lambda_soft']:g}",
            f"{h['top1_agreement']:.4f}",
            f"{h['top1_agreement_masked']:.4f}",
            f"{h['kl']:.4f}",
            f"{h['hard_proposal_rate']:.4%}",
            f"{h['mean_soft_violation']:.4f}",
            icpt,
            " / ".join(vals) if vals else "–",
        )
    return table


ABLATION_VARIANTS: tuple[tuple[str, bool, bool], ...] = (
    ("kl", False, False),
    ("kl+hard", True, False),
    ("kl+hard+soft", True, True),
)
"""(name, use hard term, use soft term) of each ablation row."""


def ablation_configs(cfg: DistillConfig) -> list[tuple[str, DistillConfig]]:
    """The three ablation configs derived from ``cfg`` (λ weights of ``cfg``, or the defaults
    when ``cfg`` switches a term off)."""
    default = DistillConfig.model_validate({})
    lh = cfg.lambda_hard or default.lambda_hard
    ls = cfg.lambda_soft or default.lambda_soft
    return [
        (
            name,
            cfg.model_copy(
                update={"lambda_hard": lh if h else 0.0, "lambda_soft": ls if s else 0.0}
            ),
        )
        for name, h, s in ABLATION_VARIANTS
    ]


__all__ = [
    "ABLATION_VARIANTS",
    "ablation_configs",
    "ablation_table",
    "closed_loop",
    "fidelity_table",
    "held_out_fidelity",
    "play",
]
