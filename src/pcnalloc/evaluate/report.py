"""Sweep report: a Markdown summary and PNG plots (metric vs offered load, 95 % CI bars).

Functions return text or PNG bytes; the caller decides where and how (atomically) to write.
"""

from __future__ import annotations

from typing import Any

from pcnalloc.baselines.registry import display_name

PLOTS: dict[str, tuple[str, str]] = {
    "value_vs_load.png": ("weighted_value_ratio", "weighted value ratio"),
    "critical_blocking_vs_load.png": ("blocking_priority_le1", "blocking, priority ≤ 1"),
}
"""File name → (aggregated metric, axis label) of the standard plots."""

_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("weighted_value_ratio", "value ratio", "{:.4f}"),
    ("blocking_priority_le1", "crit. blocking", "{:.4f}"),
    ("blocking_probability", "blocking", "{:.4f}"),
    ("max_link_utilisation", "max util", "{:.3f}"),
    ("mean_latency_over_bound", "lat/bound", "{:.3f}"),
    ("executed_hard_violations", "violations", "{:.1f}"),
    ("intercepted", "intercepted", "{:.1f}"),
)


def fmt_ci(stat: dict[str, Any], fmt: str = "{:.4f}") -> str:
    """``mean ± half-width`` (just the mean when there is no CI)."""
    m = fmt.format(stat["mean"])
    return m if stat.get("ci95") is None else f"{m} ± {fmt.format(stat['ci95'])}"


_SHORT: tuple[tuple[str, str, str], ...] = (
    ("weighted_value_ratio", "value ratio", "{:.3f}"),
    ("blocking_priority_le1", "crit. block", "{:.3f}"),
    ("blocking_probability", "blocking", "{:.3f}"),
)


def table_rows(
    result: dict[str, Any], *, compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows (case, load, policy, metrics ± CI, decisions/s) of the sweep table.

    ``compact`` keeps the headline columns (for an 80-column terminal) and shows violations
    and interceptions as totals over seeds."""
    cols = _SHORT if compact else _COLUMNS
    header = ["case", "load", "policy"] + [c[1] for c in cols]
    header += ["viol.", "interc."] if compact else ["decisions/s"]
    rows = []
    for a in sorted(result["aggregate"], key=lambda a: (a["case"], a["load"])):
        m = a["metrics"]
        row = [a["case"], f"{a['load']:g}", a["policy"]]
        row += [fmt_ci(m[k], f).replace(" ± ", "±") if compact else fmt_ci(m[k], f)
                for k, _, f in cols]  # fmt: skip
        if compact:
            n = m["intercepted"]["n"]
            row += [
                f"{m['executed_hard_violations']['mean'] * n:.0f}",
                f"{m['intercepted']['mean'] * n:.0f}",
            ]
        else:
            row += [f"{a['timing']['decisions_per_s']['mean']:,.0f}"]
        rows.append(row)
    return header, rows


def bound_rows(
    bound: dict[str, Any], *, compact: bool = False
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the offline-bound gap table (``compact``: means only for value and
    bound, short headers, for an 80-column terminal)."""
    if compact:
        header = ["case", "load", "policy", "value", "bound", "gap", "cert.", "pre-em."]
    else:
        header = ["case", "load", "policy", "value", "MILP bound", "gap", "certified", "pre-empted"]
    rows = []
    for a in bound["aggregate"]:
        v, ub = (
            (f"{a['value']['mean']:.1f}", f"{a['upper_bound']['mean']:.1f}")
            if compact
            else (fmt_ci(a["value"], "{:.1f}"), fmt_ci(a["upper_bound"], "{:.1f}"))
        )
        gap = fmt_ci(a["gap"], "{:.3f}")
        rows.append(
            [a["case"], f"{a['load']:g}", a["policy"], v, ub,
             gap.replace(" ± ", "±") if compact else gap,
             "yes" if a["certified"] else "no", str(a["preempted"])]
        )  # fmt: skip
    return header, rows


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(
    result: dict[str, Any], bound: dict[str, Any] | None = None, plots: list[str] | None = None
) -> str:
    """The sweep (and optional offline-bound) report as Markdown."""
    g = result["grid"]
    ex = result["executor"]
    parts = [
        "# Policy evaluation",
        "",
        f"Policies {', '.join(g['policies'])} on {', '.join(g['cases'])} at offered loads "
        f"{', '.join(f'{x:g}' for x in g['loads'])}; seeds {g['seeds']} "
        f"({len(g['seeds'])} episodes of {g['requests']} requests per cell, the same seeds "
        f"for every policy). Executor: {ex['name']} ({ex['workers']} workers), "
        f"{result['wall_s']:.1f} s.",
        "",
        "Cells are the mean over seeds ± the 95 % confidence half-width "
        "(t-distribution). Value ratio = Σ value·grant carried (minus pre-empted value) / "
        "Σ value offered; critical blocking = blocking of priority ≤ 1 classes.",
        "",
        _md_table(*table_rows(result)),
        "",
    ]
    if bound is not None:
        parts += [
            "## Offline hindsight bound",
            "",
            f"Hindsight MILP (HiGHS) on the first {bound['requests']} new requests of each "
            "episode, grid events off, each policy against the bound of its own candidate "
            "set and warm start. Gap = 1 − value / bound. The model covers pre-empting "
            "schedules (a pre-empted flow's value is lost, its restoration earns its share of "
            "the remaining time; flows present at the window start may be pre-empted at the "
            "cost of their value), so every row whose policy saw the bound's requests is "
            "certified. The bound is the least of the LP relaxation and the MILP's dual bound "
            "at its time limit.",
            "",
            _md_table(*bound_rows(bound)),
            "",
        ]
    for name in plots or []:
        parts += [f"![{name}]({name})", ""]
    return "\n".join(parts)


def load_series(result: dict[str, Any], case: str, metric: str) -> dict[str, list]:
    """Policy → sorted (load, aggregated metric) points on ``case``, every policy of the grid
    (learned ones included: aggregates name them without their artifact paths)."""
    out: dict[str, list] = {}
    for pol in dict.fromkeys(display_name(p) for p in result["grid"]["policies"]):
        pts = sorted(
            ((a["load"], a["metrics"][metric]) for a in result["aggregate"]
             if a["case"] == case and a["policy"] == pol),
            key=lambda p: p[0],
        )  # fmt: skip
        if pts:
            out[pol] = pts
    return out


def plot_vs_load(result: dict[str, Any], metric: str, label: str) -> bytes:
    """PNG bytes: ``metric`` vs offered load, one line per policy with 95 % CI bars, one
    panel per case."""
    from pcnalloc.core.plotting import png_bytes, subplots

    cases = result["grid"]["cases"]
    fig, axes = subplots(1, len(cases), figsize=(5 * len(cases), 3.6), squeeze=False)
    for ax, case in zip(axes[0], cases, strict=True):
        for pol, pts in load_series(result, case, metric).items():
            x = [p[0] for p in pts]
            y = [p[1]["mean"] for p in pts]
            err = [p[1]["ci95"] or 0.0 for p in pts]
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=pol)
        ax.set_title(case)
        ax.set_xlabel("offered load ρ")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    return png_bytes(fig)
