"""``pcnalloc audit cosign|verify-cosigned``: regions cosign each other's tree heads (RPoS).

The commands join the ``pcnalloc audit`` group of :mod:`pcnalloc.commands.audit`; importing
this module (the CLI imports every command module) adds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from pcnalloc.commands._common import console
from pcnalloc.commands.audit import audit_app

CommitteeOpt = Annotated[
    Path,
    typer.Option(
        "--committee",
        help="committee file (YAML: kappa, seed, regions with name, key, reputation), "
        "from the operator (docs/audit.md)",
    ),
]


def _refused(err: Exception) -> typer.Exit:
    console.print(f"[red]{escape(' '.join(str(err).split()))}[/]", soft_wrap=True)
    return typer.Exit(1)


@audit_app.command("cosign")
def cosign_cmd(
    log: Annotated[Path, typer.Argument(help="the origin region's audit log")],
    committee: CommitteeOpt,
    origin: Annotated[str, typer.Option("--origin", help="the origin's region name")],
    round_: Annotated[int, typer.Option("--round", min=0, help="cosigning round (shared)")],
    key: Annotated[Path, typer.Option("--key", help="this member region's private key")],
    into: Annotated[
        Path,
        typer.Option(
            "--into",
            help="the round's cosigned head file: created, or this signature added to it",
        ),
    ],
    previous: Annotated[
        Path | None,
        typer.Option(
            "--previous",
            help="the cosigned head of this origin this member signed last: the log must "
            "extend it (a rewrite is refused)",
        ),
    ] = None,
) -> None:
    """As a committee member: verify the origin's log and cosign its latest head.

    The log must verify with the origin's key from the committee file and extend the head
    given by --previous; otherwise this member refuses (exit 1) and --into is untouched.
    """
    from pcnalloc.edge import keys
    from pcnalloc.edge.committee import cosign_log, load_committee
    from pcnalloc.edge.cosign import CosignError

    com = load_committee(committee)
    priv = keys.load_private_key(key)
    try:
        res = cosign_log(
            log, com, origin=origin, round_=round_, private_key=priv, into=into, previous=previous
        )
    except CosignError as err:
        raise _refused(err) from None
    console.print(escape(str(res)), soft_wrap=True)


@audit_app.command("verify-cosigned")
def verify_cosigned_cmd(
    head: Annotated[Path, typer.Argument(help="cosigned head (pcnalloc audit cosign --into)")],
    committee: CommitteeOpt,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="also check that this log of the origin extends the head"),
    ] = None,
) -> None:
    """Check that a committee majority cosigned the head (exit 1 if not, 2 on bad input).

    With --log, the origin's log must still extend the head (exit 1 if cut or rewritten
    since). The committee is recomputed from the committee file's reputations, only signatures by
    its members' keys count, and the proposer must be the round's.
    """
    from pcnalloc.edge.committee import load_committee, verify_cosigned
    from pcnalloc.edge.cosign import CosignError

    com = load_committee(committee)
    try:
        verdict = verify_cosigned(head, com, log=log)
    except CosignError as err:
        raise _refused(err) from None
    console.print(f"[green]{escape(str(verdict))}[/]", soft_wrap=True)
