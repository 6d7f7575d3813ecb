"""Every seed and count flag of every verb has a range: out of it is one line, exit 2, before
any work (a negative seed was a ValueError deep in numpy, 10^10 requests ran out of memory or
for days, a seed of 10^23 overflowed a C long in teacher train and library build)."""

from __future__ import annotations

import pytest
import typer

from pcnalloc.cli import app, main
from pcnalloc.core.limits import SEED_MAX

COUNT_WORDS = ("seed", "request", "step", "episode", "epoch", "worker", "lockstep", "rows")
COUNT_WORDS += ("slots", "malicious")
CHECKED_ELSEWHERE = {
    "access simulate --devices",  # ≤ J1 + J2 of the config: an AccessConfigError line
    "serve --region",  # a region of the built network
}


def _int_options() -> list[tuple[str, str, int | None, int | None]]:
    out = []

    def walk(cmd, path: list[str]) -> None:  # type: ignore[no-untyped-def]
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
            return
        for p in cmd.params:
            td = getattr(p, "type_descriptor", None)
            if td is None or (getattr(td, "annotation", None) is not int and "int" not in repr(td)):
                continue
            flag = p.opts[0]
            if any(w in flag for w in COUNT_WORDS):
                out.append((" ".join(path), flag, p.min, p.max))

    walk(typer.main.get_command(app), [])
    return out


OPTIONS = _int_options()


def test_the_sweep_sees_the_flags() -> None:
    seen = {f"{v} {f}" for v, f, _, _ in OPTIONS}
    assert {"simulate --seed", "teacher train --steps", "library build --requests"} <= seen
    assert len(OPTIONS) >= 30


@pytest.mark.parametrize(
    ("verb", "flag", "lo", "hi"), OPTIONS, ids=[f"{v} {f}" for v, f, *_ in OPTIONS]
)
def test_every_count_and_seed_flag_is_bounded(verb: str, flag: str, lo, hi) -> None:
    if f"{verb} {flag}" in CHECKED_ELSEWHERE:
        return
    assert lo is not None and lo >= 0, f"{verb} {flag} takes negative values"
    assert hi is not None, f"{verb} {flag} has no upper bound"
    if "seed" in flag and flag != "--seeds":
        assert hi <= SEED_MAX, f"{verb} {flag} takes seeds past {SEED_MAX}"


@pytest.mark.parametrize(
    "argv",
    [
        ["access", "simulate", "--seed", "-1"],
        ["distributed", "trust", "--seed", "-1"],
        ["rules", "explain", "--seed", "-1"],
        ["teacher", "train", "--out", "OUT", "--seed", str(10**23)],
        ["library", "build", "--teacher", "ksp-ff", "--out", "OUT", "--seed", str(10**23)],
        ["library", "build", "--teacher", "ksp-ff", "--out", "OUT", "--requests", str(10**11)],
        ["access", "compare", "--seeds", str(10**12)],
        ["distributed", "trust", "--slots", str(10**12), "--out", "OUT"],
        ["evaluate", "--seeds", "0-100000000000", "--out", "OUT"],
        ["teacher", "evaluate", "--teacher", "x.pt", "--seeds", "0-2,99999999999"],
    ],
    ids=lambda a: " ".join(a[:2] + a[-2:-1]),
)
def test_out_of_range_is_one_line(argv: list[str], tmp_path, capsys) -> None:
    args = [str(tmp_path / "o") if a == "OUT" else a for a in argv]
    assert main(args) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    assert list(tmp_path.iterdir()) == []
