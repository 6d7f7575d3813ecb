"""``pcnalloc audit verify`` and ``pcnalloc keys new``: check a log, make an Ed25519 key pair."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pcnalloc.commands._common import console

audit_app = typer.Typer(help="Tamper-evident audit logs.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Ed25519 signing keys (audit checkpoints, artifacts).", no_args_is_help=True
)


@audit_app.command("verify")
def verify_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (JSON lines)")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="signer's public key (PEM); default: LOG.pub beside it"),
    ] = None,
) -> None:
    """Print OK or the first edited, dropped, inserted or reordered record; exit 1 on failure."""
    from pcnalloc.edge.audit import verify

    result = verify(log, public_key)
    if result.ok:
        console.print(f"[green]{result}[/]")
        return
    console.print(f"[red]{result}[/]")
    raise SystemExit(1)  # click returns (not raises) typer.Exit codes when not standalone


@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="folder for NAME.key and NAME.pub")],
    name: Annotated[str, typer.Option(help="file stem")] = "pcnalloc",
) -> None:
    """Create an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub."""
    from pcnalloc.edge import keys

    priv, pub = keys.save_keypair(out, name)
    kid = keys.key_id(keys.load_public_key(pub))
    console.print(f"private key {priv} (mode 0600)\npublic key  {pub}\nkey id      {kid}")


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")
