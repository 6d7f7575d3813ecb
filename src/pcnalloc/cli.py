"""Command line: thin wrappers that parse, call library functions and print.

Sub-commands live in :mod:`pcnalloc.commands`; each module there defines
``register(app: typer.Typer)`` and is discovered automatically.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys

import typer

from pcnalloc.errors import PcnallocError

app = typer.Typer(
    name="pcnalloc",
    help="Secure, distributed resource allocation for power communication networks.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from pcnalloc import __version__

        print(f"pcnalloc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        help="Print the installed version and exit.",
    ),
) -> None:
    """Secure, distributed resource allocation for power communication networks."""


def _register_commands() -> None:
    import pcnalloc.commands as pkg

    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"pcnalloc.commands.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: typed errors become a one-line message and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        rc = app(args=argv, standalone_mode=False)
    except PcnallocError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except typer.Exit as ex:
        return int(ex.exit_code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except typer.TyperException as err:  # usage errors (click's, vendored by typer)
        show = getattr(err, "show", None)
        if callable(show):
            show()
        else:
            print(f"error: {err}", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
