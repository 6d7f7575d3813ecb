"""kill -9 soak: a service killed at random under loopback load restarts from its log with
the pools of a replay of that log, and no acknowledged decision or release is lost."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from service_helpers import AUTH, TOKEN, Zygote, compile_random_student, free_port, wait_ready

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.audit import verify
from pcnalloc.edge.flowbook import read_records, replay
from pcnalloc.network.builder import cached_network
from pcnalloc.traffic.catalog import load_catalog

httpx = pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory, small_pool_graph_file: Path) -> Path:
    data = json.loads(small_pool_graph_file.read_text())
    for site in data["sites"]:
        site.pop("region")
    p = tmp_path_factory.mktemp("graphs") / "tiny50one.json"
    p.write_text(json.dumps(data))
    return p


@pytest.fixture(scope="module")
def cfg(make_config: Callable[..., EnvConfig], graph: Path) -> EnvConfig:
    return make_config(graph, events="calm", traffic={"load": 1.5, "warm_start": False})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, cfg: EnvConfig) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("soak")
    signer = keys.save_keypair(d / "keys", "edge")
    audit_key = keys.save_keypair(d / "keys", "audit")
    token = d / "token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    art = compile_random_student(d / "artifact", cfg, signer[0])
    return {"artifact": art, "pub": signer[1], "audit_key": audit_key[0], "token": token}


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


class Load:
    """Client threads sending requests (and a few releases) until the server dies."""

    def __init__(self, port: int, names: list[str], sites: list[str], seed: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.names, self.sites, self.seed = names, sites, seed
        self.acked: list[dict[str, Any]] = []
        self.released: list[str] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(3)]
        for t in self.threads:
            t.start()

    def run(self, i: int) -> None:
        rng = np.random.default_rng([self.seed, i])
        mine: list[str] = []
        with httpx.Client(base_url=self.url, headers=AUTH, timeout=5.0) as c:
            while True:
                try:
                    if mine and rng.random() < 0.15:
                        fid = mine.pop(int(rng.integers(len(mine))))
                        r = c.delete(f"/v1/flows/{fid}")
                        if r.status_code == 200:
                            with self.lock:
                                self.released.append(fid)
                        continue
                    src, dst = rng.choice(len(self.sites), 2, replace=False)
                    b = {
                        "service_class": self.names[int(rng.integers(len(self.names)))],
                        "src": self.sites[int(src)],
                        "dst": self.sites[int(dst)],
                        "holding_s": 3600.0,
                    }
                    r = c.post("/v1/allocate", json=b)
                except httpx.HTTPError as err:
                    with self.lock:
                        self.errors.append(repr(err))
                    return  # killed
                assert r.status_code == 200, r.text
                got = r.json()
                with self.lock:
                    self.acked.append(got)
                if got["flow_id"]:
                    mine.append(got["flow_id"])

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=30)


def check_restart(port: int, log: Path, net: Any, catalog: Any, history: int) -> dict:
    """The restarted server's pools and flows equal a replay of its log."""
    got = httpx.get(f"http://127.0.0.1:{port}/v1/flows", headers=AUTH, timeout=10).json()
    recs = read_records(log)[: got["log_records"]]
    snap = replay(recs, net, catalog, history).snapshot()
    assert got["pools_sha256"] == snap["pools_sha256"]
    assert sorted(f["flow_id"] for f in got["flows"]) == [p for p, _ in snap["ids"]]
    assert got["next_request"] == snap["n_requests"]
    return got


def soak(kills: int, setup: dict[str, Path], zygote: Zygote, cfg: EnvConfig, tmp: Path) -> dict:
    log = tmp / "audit.jsonl"
    net = cached_network(cfg.network.case, cfg.network)
    catalog = load_catalog(cfg.traffic.catalog, max_levels=cfg.grant_levels)
    names, sites = list(catalog.names), list(net.site_names)
    rng = np.random.default_rng(0)
    acked: list[dict[str, Any]] = []
    released: list[str] = []
    restarts_s = []
    for k in range(kills + 1):
        port = free_port()
        argv = ["serve", "--artifact", str(setup["artifact"]), "--public-key", str(setup["pub"])]
        argv += ["--region", "0", "--port", str(port), "--audit", str(log)]
        argv += ["--audit-key", str(setup["audit_key"]), "--log-level", "warning"]
        argv += ["--token-file", str(setup["token"])]
        t0 = time.monotonic()
        pid = zygote.start(argv)
        wait_ready(port, pid)
        restarts_s.append(time.monotonic() - t0)
        check_restart(port, log, net, catalog, cfg.history)
        if k == kills:  # the last start: a clean shutdown signs the tail
            os.kill(pid, signal.SIGTERM)
            for _ in range(200):
                try:
                    os.kill(pid, 0)
                    time.sleep(0.05)
                except ProcessLookupError:
                    break
            break
        load = Load(port, names, sites, seed=k)
        t1 = time.monotonic()
        while not load.acked and time.monotonic() - t1 < 60:  # a fresh process warms up
            time.sleep(0.01)
        time.sleep(float(rng.uniform(0.05, 0.6)))
        os.kill(pid, signal.SIGKILL)
        load.join()
        acked += load.acked
        released += load.released
    recs = read_records(log)
    outcomes = {r["body"]["request_id"]: r["body"] for r in recs if r["type"] == "outcome"}
    rel = {r["body"]["flow_id"] for r in recs if r["type"] == "release"}
    lost = [a for a in acked if a["request_id"] not in outcomes]
    for a in acked:
        o = outcomes.get(a["request_id"])
        assert o is None or (o["outcome"], o["action"]) == (a["outcome"], a["action"])
        if o is not None and a["flow_id"]:
            assert o["flow"]["flow_id"] == a["flow_id"]
    res = verify(log, setup["pub"].with_name("audit.pub"))
    return {
        "kills": kills,
        "acknowledged": len(acked),
        "acknowledged_releases": len(released),
        "lost": len(lost),
        "lost_releases": len(set(released) - rel),
        "restarts": sum(r["type"] == "restart" for r in recs),
        "verify": str(res),
        "ok": res.ok,
        "restart_s_p50": float(np.median(restarts_s)),
        "records": len(recs),
    }


def _assert_soak(out: dict) -> None:
    assert out["ok"], out["verify"]
    assert out["lost"] == 0 and out["lost_releases"] == 0, out
    assert out["restarts"] == out["kills"], out
    assert out["acknowledged"] > out["kills"], out  # load reached every run


def test_kill9_soak_small(setup: dict, zygote: Zygote, cfg: EnvConfig, tmp_path: Path) -> None:
    out = soak(3, setup, zygote, cfg, tmp_path)
    print(json.dumps({**out, "loadavg": os.getloadavg()}))
    _assert_soak(out)


@pytest.mark.slow
def test_kill9_soak_50(setup: dict, zygote: Zygote, cfg: EnvConfig, tmp_path: Path) -> None:
    out = soak(50, setup, zygote, cfg, tmp_path)
    print(json.dumps({**out, "loadavg": os.getloadavg()}))
    _assert_soak(out)
