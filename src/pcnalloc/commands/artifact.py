"""``pcnalloc compile`` and ``pcnalloc artifact verify``: build and check signed edge artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pcnalloc.commands._common import console, progress_bar
from pcnalloc.core.limits import ROWS_MAX
from pcnalloc.export.config import COMPILE_DEFAULTS, CompileConfig

artifact_app = typer.Typer(help="Signed edge artifacts (ONNX student + manifest).")


def _help(field: str) -> str:
    """The option's help text: the compile config field's description (written once)."""
    return str(CompileConfig.model_fields[field].description)


def compile_cmd(
    student: Annotated[Path, typer.Option("--student", help="student checkpoint (.pt)")],
    library: Annotated[
        Path, typer.Option("--library", help="trajectory library: sample rows and env config")
    ],
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (pcnalloc keys new)")],
    out: Annotated[Path, typer.Option("--out", help="artifact folder to publish")],
    int8: Annotated[bool, typer.Option("--int8/--no-int8", help=_help("int8"))] = (
        COMPILE_DEFAULTS.int8
    ),
    rows: Annotated[int, typer.Option(help=_help("rows"), min=1, max=ROWS_MAX)] = (
        COMPILE_DEFAULTS.rows
    ),
    min_agreement: Annotated[
        float, typer.Option(help=_help("min_agreement"), min=0.0, max=1.0)
    ] = COMPILE_DEFAULTS.min_agreement,
    overwrite: Annotated[bool, typer.Option(help="replace an existing artifact folder")] = False,
) -> None:
    """Export STUDENT to ONNX, check parity on library rows, sign and publish OUT."""
    from pcnalloc.edge.artifact import sha256_bytes
    from pcnalloc.export.compile import (
        compile_with_fallback,
        gate_options,
        library_rows,
        load_student_module,
    )
    from pcnalloc.fileio import check_output

    check_output(out, kind="dir", overwrite=overwrite)  # before any work (publish is atomic)
    with progress_bar() as bar:
        task = bar.add_task("compile", total=3)
        module = load_student_module(student)
        name = str(getattr(module, "input_key", "compact"))
        x, env = library_rows(library, name, max_rows=rows)
        bar.advance(task)
        res, int8_refused = compile_with_fallback(
            module,
            x,
            env_config=env,
            private_key=key,
            out_dir=out,
            int8=int8,
            overwrite=overwrite,
            library=library,  # the teacher's values and masks of the sampled rows
            **gate_options(COMPILE_DEFAULTS.model_copy(update={"min_agreement": min_agreement})),
            source={
                "student": str(student),
                "student_sha256": sha256_bytes(student.read_bytes()),
                "library": str(library),
            },
        )
        bar.advance(task, 2)
    m = res.manifest
    table = Table(title=f"artifact {res.path}")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("input", f"{m['input']['name']} ({m['input']['dim']} float32)")
    table.add_row("actions", str(m["n_actions"]))
    table.add_row("parameters", str(m["student"]["param_count"]))
    table.add_row("parity max |Δ|", f"{res.parity_max_abs:.2e} on {len(x)} rows")
    if res.int8_agreement is not None:
        table.add_row("int8 agreement", f"{res.int8_agreement:.4%} raw (row by row)")
    if res.int8_decision_agreement is not None:
        table.add_row("int8 decision agreement", f"{res.int8_decision_agreement:.4%}")
    if res.closed_loop is not None:
        table.add_row("int8 closed-loop value", f"{res.closed_loop.ratio:.4%} of fp32's")
    if int8_refused is not None:
        table.add_row("int8", f"not shipped (fp32 only): {int8_refused}")
    for p, n in res.model_bytes.items():
        table.add_row(f"{p} model", f"{n} bytes, sha256 {m['models'][p]['sha256'][:16]}…")
    table.add_row("signed by", m["signature"]["key_id"])
    console.print(table)


@artifact_app.command("verify")
def verify_cmd(
    artifact: Annotated[Path, typer.Argument(help="artifact folder")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="signer's public key (PEM); default: signer.pub inside the artifact "
            "(integrity only)",
        ),
    ] = None,
) -> None:
    """Check the signature and every model hash; print OK or the problem, exit 1 on failure."""
    from pcnalloc.edge.artifact import ArtifactError, load_artifact

    try:
        art = load_artifact(artifact, public_key)
    except ArtifactError as err:
        console.print(f"[red]FAIL: {err}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    m = art.manifest
    models = ", ".join(f"{p} {len(b)} B" for p, b in art.models.items())
    origin = "" if public_key else " (key taken from the artifact: integrity only)"
    console.print(
        f"[green]OK: {artifact} signed by {art.key_id}{origin}; input {art.input_name}"
        f"[{art.input_dim}] → {art.n_actions} logits; {models}; created {m['created_at']}[/]",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``artifact`` verbs to the CLI app."""
    app.command("compile")(compile_cmd)
    app.add_typer(artifact_app, name="artifact")
