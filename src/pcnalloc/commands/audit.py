"""``pcnalloc audit verify|repair|head|prove|consistency|check-proof`` and ``pcnalloc keys new``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pcnalloc.commands._common import console

audit_app = typer.Typer(
    help="Transparency logs (RFC 9162): verify, tree heads, proofs.", no_args_is_help=True
)
keys_app = typer.Typer(
    help="Ed25519 signing keys (audit checkpoints, artifacts).", no_args_is_help=True
)


def _pinned(public_key: Path | None, trusted_keys: Path | None):
    """The verifier's pinned keys from --public-key and/or --trusted-keys (never the log's)."""
    from pcnalloc.edge.audit_verify import TrustedKeys, load_trusted_keys, pinned_keys

    if public_key is None and trusted_keys is None:
        pinned_keys(None)  # raises the one-line "needs a pinned key" error
    by_id: dict = {}
    if trusted_keys is not None:
        by_id.update(load_trusted_keys(trusted_keys).by_id)
    if public_key is not None:
        by_id.update(pinned_keys(public_key).by_id)
    return TrustedKeys(by_id)


PublicKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        help="the signer's public key (PEM), pinned: obtained from the operator, never the "
        "file beside the log",
    ),
]
TrustedKeysOpt = Annotated[
    Path | None,
    typer.Option(
        "--trusted-keys",
        help="YAML file NAME: PEM text or .pub path, one entry per pinned key (docs/audit.md)",
    ),
]
OutOpt = Annotated[Path | None, typer.Option("--out", help="write the JSON here, not stdout")]
OverwriteOpt = Annotated[bool, typer.Option(help="replace an existing --out")]


def _check_out(out: Path | None, overwrite: bool) -> None:
    """Refuse an unusable --out (an existing file without --overwrite, a folder, a parent
    that is a file) before the log is read."""
    if out is not None:
        from pcnalloc.fileio import check_output

        check_output(out, kind="file", overwrite=overwrite)


def _emit(obj: dict, out: Path | None, overwrite: bool) -> None:
    text = json.dumps(obj, indent=1, sort_keys=True)
    if out is None:
        typer.echo(text)
    else:
        from pcnalloc.commands._common import write_atomic

        _check_out(out, overwrite)  # again: none appeared meanwhile
        write_atomic(out, text + "\n")  # temp beside it, then rename
        console.print(f"wrote {out}")


@audit_app.command("verify")
def verify_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (JSON lines)")],
    public_key: PublicKeyOpt = None,
    trusted_keys: TrustedKeysOpt = None,
    published_head: Annotated[
        Path | None,
        typer.Option(
            "--published-head",
            help="a tree head saved earlier (pcnalloc audit head): the log must extend it",
        ),
    ] = None,
    allow_unsigned_tail: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned-tail",
            help="accept records after the last tree head (a live log or a crashed writer)",
        ),
    ] = False,
) -> None:
    """Print OK or the first tampered record; exit 1 on tampering, 2 on a foreign key or bad input.

    Checks the hash chain, every signed tree head (Merkle root and Ed25519 signature with
    the pinned key), the cadence the header promises, the tail, and consistency with the
    published head.
    """
    from pcnalloc.edge.audit import AuditError, verify

    pinned = _pinned(public_key, trusted_keys)
    result = verify(
        log, pinned, published_head=published_head, allow_unsigned_tail=allow_unsigned_tail
    )
    if result.ok:
        console.print(f"[green]{escape(str(result))}[/]", soft_wrap=True)
        return
    if result.problem in ("foreign_key", "format"):
        raise AuditError(str(result))  # not this operator's log: bad input, exit 2
    console.print(f"[red]{escape(str(result))}[/]", soft_wrap=True)
    raise SystemExit(1)  # click returns (not raises) typer.Exit codes when not standalone


@audit_app.command("repair")
def repair_cmd(
    log: Annotated[Path, typer.Argument(help="audit log with a torn last line")],
    public_key: PublicKeyOpt = None,
    trusted_keys: TrustedKeysOpt = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", help="the log's private signing key: append a signed recovery record"
        ),
    ] = None,
    backup: Annotated[
        Path | None, typer.Option("--backup", help="where the original goes (default LOG.bak)")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing backup")] = False,
) -> None:
    """Keep the verified prefix of a torn log (a crashed writer) and say what was dropped.

    The log must verify with the pinned key up to the torn bytes; any other failure is
    refused (exit 1) with the log untouched. The original stays as a backup.
    """
    from pcnalloc.edge.audit_repair import NotTornError, repair
    from pcnalloc.fileio import check_output

    bak = backup if backup is not None else log.with_name(log.name + ".bak")
    # a folder or a bad parent, before the log is read (an existing backup: repair refuses)
    check_output(bak, kind="file", overwrite=True, flag="--backup")
    pinned = _pinned(public_key, trusted_keys)
    try:
        res = repair(log, pinned, private_key=key, backup=backup, overwrite=overwrite)
    except NotTornError as err:
        console.print(f"[red]{escape(str(err))}[/]", soft_wrap=True)
        raise SystemExit(1) from None
    console.print(escape(str(res)), soft_wrap=True)


@audit_app.command("head")
def head_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (JSON lines)")],
    public_key: PublicKeyOpt = None,
    trusted_keys: TrustedKeysOpt = None,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export the latest signed tree head of a log that verifies, to publish it elsewhere."""
    from pcnalloc.edge.audit import FORMAT, HEAD_TYPE
    from pcnalloc.edge.audit_proofs import latest_tree_head

    _check_out(out, overwrite)
    sth = latest_tree_head(log, _pinned(public_key, trusted_keys))
    _emit({"format": FORMAT, "type": HEAD_TYPE, **sth}, out, overwrite)


@audit_app.command("prove")
def prove_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (JSON lines)")],
    index: Annotated[int, typer.Option("--index", help="record (leaf) index to prove")],
    size: Annotated[
        int | None, typer.Option("--size", help="tree size; default: the latest signed head")
    ] = None,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Print an RFC 9162 inclusion proof of record INDEX in the tree of SIZE (JSON)."""
    from pcnalloc.edge.audit_proofs import prove_inclusion

    _check_out(out, overwrite)
    _emit(prove_inclusion(log, index, size), out, overwrite)


@audit_app.command("consistency")
def consistency_cmd(
    log: Annotated[Path, typer.Argument(help="audit log (JSON lines)")],
    old_size: Annotated[int, typer.Option("--old-size", help="size of the earlier tree")],
    size: Annotated[
        int | None, typer.Option("--size", help="tree size; default: the latest signed head")
    ] = None,
    out: OutOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Print an RFC 9162 consistency proof from the tree of OLD_SIZE to that of SIZE (JSON)."""
    from pcnalloc.edge.audit_proofs import prove_consistency

    _check_out(out, overwrite)
    _emit(prove_consistency(log, old_size, size), out, overwrite)


@audit_app.command("check-proof")
def check_proof_cmd(
    proof: Annotated[Path, typer.Argument(help="proof JSON (pcnalloc audit prove|consistency)")],
    public_key: PublicKeyOpt = None,
    trusted_keys: TrustedKeysOpt = None,
    head: Annotated[
        list[Path] | None,
        typer.Option("--head", help="a tree head you trust (repeatable); must match the proof"),
    ] = None,
) -> None:
    """Check a proof offline against signed tree heads; exit 2 if it does not verify."""
    from pcnalloc.edge.audit_proofs import check_proof

    msg = check_proof(proof, _pinned(public_key, trusted_keys), list(head or []))
    console.print(f"[green]{escape(msg)}[/]", soft_wrap=True)


@keys_app.command("new")
def keys_new(
    out: Annotated[Path, typer.Option("--out", help="folder for NAME.key and NAME.pub")],
    name: Annotated[str, typer.Option(help="file stem")] = "pcnalloc",
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="encrypt the private key with the passphrase on this file's first line",
        ),
    ] = None,
    passphrase: Annotated[
        bool,
        typer.Option(
            "--passphrase",
            help="encrypt the private key; passphrase from PCNALLOC_KEY_PASSPHRASE_FILE or "
            "PCNALLOC_KEY_PASSPHRASE, else asked twice on the terminal",
        ),
    ] = False,
) -> None:
    """Create an Ed25519 key pair: NAME.key (private, mode 0600) and NAME.pub.

    With --passphrase-file or --passphrase the private key is encrypted (PKCS#8,
    BestAvailableEncryption); every command that loads it reads the passphrase from
    PCNALLOC_KEY_PASSPHRASE_FILE or PCNALLOC_KEY_PASSPHRASE, or asks on the terminal.
    """
    from pcnalloc.edge import keys
    from pcnalloc.fileio import check_output

    # a file, a bad parent or an unwritable folder, before a passphrase is asked for
    check_output(out, kind="dir", overwrite=True)  # existing key files: save_keypair refuses
    secret = _new_passphrase(passphrase_file, passphrase)
    priv, pub = keys.save_keypair(out, name, passphrase=secret)
    kid = keys.key_id(keys.load_public_key(pub))
    how = "mode 0600, passphrase-encrypted" if secret else "mode 0600"
    console.print(f"private key {priv} ({how})\npublic key  {pub}\nkey id      {kid}")


def _new_passphrase(path: Path | None, ask: bool) -> bytes | None:
    """The passphrase for a new key: from the file, the environment, or asked twice."""
    import getpass
    import os
    import sys

    from pcnalloc.edge import keys

    if path is not None:
        return keys.read_passphrase_file(path)
    if not ask:
        return None
    if os.environ.get(keys.PASSPHRASE_FILE_ENV) or os.environ.get(keys.PASSPHRASE_ENV):
        return keys.passphrase_from_env("the new key")
    if sys.stdin is None or not sys.stdin.isatty():
        raise keys.KeyFileError(
            f"--passphrase needs {keys.PASSPHRASE_FILE_ENV}, {keys.PASSPHRASE_ENV} or a "
            "terminal to ask on (or give --passphrase-file FILE)"
        )
    first = getpass.getpass("passphrase for the new key: ").encode()
    if getpass.getpass("repeat the passphrase: ").encode() != first:
        raise keys.KeyFileError("the two passphrases differ; no key written")
    return first


def register(app: typer.Typer) -> None:
    """Add the ``audit`` verbs to the CLI app."""
    app.add_typer(audit_app, name="audit")
    app.add_typer(keys_app, name="keys")
