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

from pcnalloc.commands._notice import start_notice
from pcnalloc.errors import PcnallocError, missing_extra

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


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _verb(args: list[str]) -> str:
    """The verb's words in ``args`` ("pcnalloc artifact verify"), for messages."""
    return " ".join(["pcnalloc", *(a for a in args[:2] if not a.startswith("-"))])


def _anticipated(err: BaseException, args: list[str] | None = None) -> str | None:
    """The one-line message of a failure that bad input causes (a path, a file's bytes, a
    nesting depth) or a missing optional package (naming its extra), or None for an
    unexpected error."""
    if isinstance(err, PcnallocError):
        return _one_line(err)
    extra = missing_extra(err, _verb(args or []))
    if extra is not None:
        return _one_line(extra)
    if isinstance(err, UnicodeDecodeError):
        return f"a file is not valid UTF-8 text ({err.reason} at byte {err.start})"
    if isinstance(err, OSError):
        where = f" {err.filename!r}" if err.filename else ""
        return f"cannot use{where}: {err.strerror or _one_line(err)}"
    if isinstance(err, RecursionError):
        return "input nested too deeply (a rule predicate or a config); flatten it"
    try:
        import pyarrow as pa
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None
    if isinstance(err, pa.ArrowException):
        return f"unreadable Parquet/Arrow data: {_one_line(err)}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input becomes a one-line message and exit status 2.

    Typed errors (:class:`~pcnalloc.errors.PcnallocError`) and the failures bad input causes
    (OS errors on paths, undecodable files, Parquet errors, too-deep nesting) print one line,
    exit 2. An unexpected exception prints one line and a pointer to ``--debug``, exit 1;
    with ``--debug`` as the first argument it is raised with its traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = bool(args) and args[0] == "--debug"
    if debug:
        args = args[1:]
    with start_notice(args):  # on a terminal: "pcnalloc VERB: starting…" until the first output
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        return _run(args, debug)


def _run(args: list[str], debug: bool) -> int:
    """:func:`main` past the argument split: run the verb, map failures to exit codes."""
    try:
        rc = app(args=args, standalone_mode=False, prog_name="pcnalloc")
    except typer.Exit as ex:
        return int(ex.exit_code or 0)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except typer.TyperException as err:  # usage errors (click's, vendored by typer)
        fmt = getattr(err, "format_message", None)
        msg = _one_line(fmt()) if callable(fmt) and fmt() else ""
        show = getattr(err, "show", None)
        if not msg and callable(show):  # no arguments: the verb's help
            show()
        else:  # a bad flag or value: one line, like every other bad input
            ctx = getattr(err, "ctx", None)
            path = getattr(ctx, "command_path", None) or "pcnalloc"
            print(f"error: {msg or err} (see `{path} --help`)", file=sys.stderr)
        return int(getattr(err, "exit_code", 2))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        known = _anticipated(err, args)
        if known is not None:
            print(f"error: {known}", file=sys.stderr)
            return 2
        print(
            f"internal error: {type(err).__name__}: {_one_line(err)} "
            "(rerun as `pcnalloc --debug ...` for the traceback)",
            file=sys.stderr,
        )
        return 1
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":
    sys.exit(main())
