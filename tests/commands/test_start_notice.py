"""A verb says it started within a second on a terminal, and leaves its output untouched."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcnalloc.cli import main
from pcnalloc.commands import _notice

PCNALLOC = Path(sys.executable).with_name("pcnalloc")


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[float, float, bytes, int]:
    """Run ``pcnalloc ARGS`` with stdout and stderr on a pseudo-terminal: (seconds to the first
    byte, seconds to the end, all bytes, exit status)."""
    leader, follower = pty.openpty()
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [str(PCNALLOC), *args], stdout=follower, stderr=follower, stdin=subprocess.DEVNULL, env=env
    )
    os.close(follower)
    first, out = None, b""
    while True:
        ready, _, _ = select.select([leader], [], [], 0.02)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the follower side closed: the process is done
                break
            if not chunk:
                break
            first = time.perf_counter() - t0 if first is None else first
            out += chunk
        elif p.poll() is not None and not ready:
            break
    rc = p.wait(timeout=120)
    os.close(leader)
    return first if first is not None else float("inf"), time.perf_counter() - t0, out, rc


@pytest.mark.skipif(not PCNALLOC.is_file(), reason="the console script is not installed")
def test_a_slow_verb_prints_the_notice_first_then_erases_it(tmp_path: Path) -> None:
    """``network show`` with the network cache off imports pandapower and builds case30
    (seconds). The notice comes first, in about half a second (the CLI's own imports); the
    table only after the build. Planted fault: the same run off a terminal (no notice) prints
    its first byte only after the build, far later."""
    env = dict(os.environ, PCNALLOC_CACHE_DIR="off", OMP_NUM_THREADS="1", TERM="xterm")
    env.pop(_notice.COMPLETION_ENV, None)
    first, total, out, rc = _run_on_a_terminal(["network", "show", "case30"], env)
    text = out.decode("utf-8", errors="replace")
    assert rc == 0, text[-2000:]
    assert text.startswith("pcnalloc network show: starting…" + _notice.ERASE), text[:200]
    assert "communication network of case30" in text
    assert first < 1.5, f"first byte after {first:.2f} s (whole run {total:.2f} s)"
    t0 = time.perf_counter()
    piped = subprocess.run(
        [str(PCNALLOC), "network", "show", "case30"], capture_output=True, env=env, check=True
    )
    assert b"starting" not in piped.stdout + piped.stderr  # off a terminal: no notice at all
    # without the notice, nothing shows until the build is done
    assert time.perf_counter() - t0 > first + 1.0


def test_no_notice_off_a_terminal_or_for_help_version_and_completion(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.delenv(_notice.COMPLETION_ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert _notice.wants_notice(["network", "show", "case14"], tty)
    assert not _notice.wants_notice(["network", "show", "case14"], io.StringIO())  # a pipe
    for args in (["--version"], ["network", "--help"], []):
        assert not _notice.wants_notice(args, tty)
    monkeypatch.setenv("TERM", "dumb")
    assert not _notice.wants_notice(["network", "show", "case14"], tty)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv(_notice.COMPLETION_ENV, "complete_bash")
    assert not _notice.wants_notice(["network", "show", "case14"], tty)
    monkeypatch.delenv(_notice.COMPLETION_ENV)
    # in-process with captured (non-terminal) streams: output exactly as before
    assert main(["network", "show", "no-such-case"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "starting" not in err


def test_the_notice_is_erased_before_an_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the error stays the one line left: the notice is erased before it."""

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, err = Tty(), Tty()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv(_notice.COMPLETION_ENV, raising=False)
    assert main(["network", "show", "no-such-case"]) == 2
    assert sys.stdout is out and sys.stderr is err  # the streams are given back
    shown = err.getvalue()
    notice = "pcnalloc network show: starting…"
    assert shown.startswith(notice + _notice.ERASE + "error:") and shown.count("\n") == 1
    assert out.getvalue() == ""
