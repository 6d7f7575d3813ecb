"""Shared builders of the service tests: a random compiled student, a settable clock."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pcnalloc.config import EnvConfig

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def compile_random_student(out: Path, cfg: EnvConfig, private_key: Path, seed: int = 7) -> Path:
    """A random 2-layer MLP student compiled and signed (as tests/edge/test_agent.py does)."""
    import numpy as np
    import torch

    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.export.compile import compile_student

    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=99)
    rows = []
    for _ in range(100):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    D = rows[0].shape[0]
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(D, 48), torch.nn.ReLU(), torch.nn.Linear(48, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    m.input_key = "compact"
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=private_key, out_dir=out)
    return out


class Clock:
    """A settable service clock (s)."""

    def __init__(self, t: float = 8 * 3600.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# ---------------------------------------------------------------------------- server processes
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Zygote:
    """A process that imports the service once and forks one ``pcnalloc serve`` per start.

    Each started server is a real process running the CLI (``pcnalloc.cli.main``), so
    ``kill -9`` kills a service exactly; forking from a warm parent saves the seconds of
    imports a fresh interpreter would spend on every restart of a soak test.
    """

    def __init__(self) -> None:
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def start(self, argv: list[str]) -> int:
        """Fork a server running ``pcnalloc <argv>``; its pid."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(argv) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def wait_ready(port: int, pid: int, timeout_s: float = 60.0) -> None:
    """Poll the health route until the server answers (or its process is gone)."""
    import os
    import time

    import httpx

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise RuntimeError(f"server {pid} exited before answering") from None
        time.sleep(0.05)
    raise TimeoutError(f"server {pid} did not answer on port {port} in {timeout_s} s")


def _zygote() -> None:
    import os
    import signal
    import sys

    from pcnalloc.cli import main
    from pcnalloc.edge import service  # noqa: F401  (warm imports for the children)

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    print("ready", flush=True)
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            code = 1
            try:
                code = main(argv) or 0
            finally:
                os._exit(code)
        print(pid, flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["zygote"]:
    _zygote()
