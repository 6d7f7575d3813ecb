"""Load test of ``pcnalloc serve`` on loopback: throughput and latency percentiles (JSON).

Usage::

    python benchmarks/bench_service.py [--requests 2000] [--clients 4] [--time-limit 60]
                                       [--case case30] [--artifact DIR --public-key PEM]
                                       [--holding-scale 1e-3] [--seed 0] [--out FILE]

1. Without ``--artifact``, compiles a seeded random MLP student for ``--case`` (the default
   env config) into a signed artifact in a temporary folder: the service's cost does not
   depend on what the weights say.
2. Starts ``pcnalloc serve`` in a subprocess on 127.0.0.1 and a free port (loopback only:
   the host is fixed, never an option) and waits for ``/v1/health``.
3. Draws the region's requests from the simulator (seeded; holding times × ``holding-scale``
   so flows also leave during the run), sends 50 warm-up requests, then at most
   ``--requests`` from ``--clients`` concurrent httpx clients until ``--time-limit`` s.
4. Reports client-side latency (send → decision received) p50/p95/p99, throughput, status
   codes, and the server's own decision latency and outcomes from ``/v1/metrics``; then stops
   the server (SIGTERM, then SIGKILL after 10 s).

Client and server share this machine's cores, so the figures bound what one region's
service does on it, not what a dedicated controller would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HOST = "127.0.0.1"  # loopback only
WARMUP = 50


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def build_artifact(case: str, out: Path, seed: int) -> tuple[Path, Path]:
    """A seeded random MLP student for ``case`` compiled and signed into ``out``."""
    import torch

    from pcnalloc.config import env_config
    from pcnalloc.edge import keys
    from pcnalloc.envs import PowerCommEnv
    from pcnalloc.export.compile import compile_student

    cfg = env_config(network={"case": case})
    env = PowerCommEnv(cfg, observation="compact")
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(200):
        rows.append(obs["compact"])
        obs, *_ = env.step(int(np.flatnonzero(obs["action_mask"])[0]))
    g = torch.Generator().manual_seed(seed)
    m = torch.nn.Sequential(
        torch.nn.Linear(rows[0].shape[0], 64), torch.nn.ReLU(), torch.nn.Linear(64, cfg.n_actions)
    )
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    m.input_key = "compact"
    priv, pub = keys.save_keypair(out / "keys", "bench")
    compile_student(m.eval(), np.stack(rows), env_config=cfg, private_key=priv, out_dir=out / "a")
    return out / "a", pub


def region_requests(case: str, region: int, n: int, seed: int, scale: float) -> list[dict]:
    """``n`` requests originating in ``region``, drawn from the simulator's traffic."""
    from pcnalloc.config import env_config
    from pcnalloc.envs import PowerCommEnv

    env = PowerCommEnv(env_config(network={"case": case}), observation="compact")
    env.reset(seed=seed)
    names, out = env.net.site_names, []
    for _ in range(50 * n):
        r = env.current_request
        if int(env.net.site_region[r.src]) == region:
            out.append(
                {
                    "service_class": env.catalog.names[r.cls],
                    "src": names[r.src],
                    "dst": names[r.dst],
                    "holding_s": max(r.holding_s * scale, 1e-3),
                }
            )
            if len(out) == n:
                break
        env.step(env.reject_action)
    return out


async def load(
    url: str, token: str, reqs: list[dict], clients: int, limit_s: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    lat_ms: list[float] = []
    status: dict[str, int] = {}
    it = iter(reqs[WARMUP:])
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:
        for body in reqs[:WARMUP]:
            (await client.post("/v1/allocate", json=body)).raise_for_status()
        t_end = time.perf_counter() + limit_s

        async def worker() -> None:
            for body in it:
                if time.perf_counter() > t_end:
                    return
                t0 = time.perf_counter()
                r = await client.post("/v1/allocate", json=body)
                lat_ms.append((time.perf_counter() - t0) * 1e3)
                status[str(r.status_code)] = status.get(str(r.status_code), 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
        metrics = (await client.get("/v1/metrics")).json()
    a = np.asarray(lat_ms)
    return {
        "sent": int(a.size),
        "status": status,
        "wall_s": round(wall, 3),
        "throughput_rps": round(a.size / wall, 1),
        "latency_ms": {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)}
        | {"mean": round(float(a.mean()), 3), "max": round(float(a.max()), 3)},
        "server": metrics,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds of load at most")
    ap.add_argument("--case", default="case30")
    ap.add_argument("--region", type=int, default=0)
    ap.add_argument("--artifact", type=Path, default=None)
    ap.add_argument("--public-key", type=Path, default=None)
    ap.add_argument("--holding-scale", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        art, pub = args.artifact, args.public_key
        if art is None:
            art, pub = build_artifact(args.case, work, args.seed)
        token = secrets.token_urlsafe(32)
        tok = work / "token"
        tok.write_text(token)
        tok.chmod(0o600)
        reqs = region_requests(
            args.case, args.region, args.requests + WARMUP, args.seed, args.holding_scale
        )
        port = free_port()
        cmd = [sys.executable, "-m", "pcnalloc.cli", "serve", "--artifact", str(art)]
        cmd += ["--public-key", str(pub), "--region", str(args.region), "--case", args.case]
        cmd += ["--host", HOST, "--port", str(port), "--token-file", str(tok)]
        cmd += ["--log-level", "warning"]
        log = open(work / "server.log", "w+b")
        server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{HOST}:{port}"
        try:
            t0 = time.perf_counter()
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"server exited {server.returncode}: {log.read().decode()}")
                try:
                    if httpx.get(f"{url}/v1/health", timeout=1.0).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - t0 > 120:
                    raise SystemExit("server did not answer /v1/health within 120 s")
                time.sleep(0.2)
            startup_s = time.perf_counter() - t0
            res = asyncio.run(
                load(url, token, reqs[: args.requests + WARMUP], args.clients, args.time_limit)
            )
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()
    out = {
        "benchmark": "service",
        "case": args.case,
        "region": args.region,
        "clients": args.clients,
        "requests": args.requests,
        "warmup": WARMUP,
        "holding_scale": args.holding_scale,
        "startup_s": round(startup_s, 2),
        **res,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg": list(os.getloadavg()),
        },
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
