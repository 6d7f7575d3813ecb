"""Cost of committee cosigning (RPoS, :mod:`pcnalloc.edge.cosign`): per tree head and per
decision, for several committee sizes, next to the cost of the audit log itself (JSON).

Usage::

    python benchmarks/bench_cosign.py [--committees 2,5,6,9,16] [--records 20000]
                                      [--checkpoint-every 1000] [--interval-s 60]
                                      [--rate 4] [--repeats 200] [--out FILE]

Per tree head, one cosigning round is timed stage by stage (median and p90 over
``--repeats`` rounds, µs):

* ``sign``: the origin signs its tree head (Ed25519);
* ``proof``: the origin computes the RFC 9162 consistency proof from the previous head
  (N records back) in a log of ``--records`` records, from the tree it keeps
  (:class:`pcnalloc.edge.merkle.Tree`; ``tree_append`` is its per-record upkeep); side by
  side ``proof_from_leaves``, recomputed from the leaf hashes (O(n), what
  ``pcnalloc audit consistency`` does on a file);
* ``member``: one committee member's check — the origin's signature, the consistency proof
  against the head it cosigned last — and its cosignature (:meth:`Cosigner.cosign`);
* ``verify``: the verifier recomputes the committee and checks the cosignatures
  (:func:`verify_published`);
* ``cpu_total`` = sign + proof + |C| × member + verify (all machines' CPU together) and
  ``critical_path`` = sign + proof + member + verify (members check in parallel on their own
  controllers; network time not included); ``round`` times :func:`run_round` (every member
  in turn, one process) as a cross-check of |C| × member.

Per decision, the head cost is amortised over the records one head covers at the configured
cadence (a head every N records, or every T s: ``min(N, rate × T)`` records per head at
``--rate`` decisions/s of one region). Side by side: the audit append itself (µs per record,
fsync per record as the service writes, and every 1,000 records) and the file-based member
of ``pcnalloc audit cosign`` (which re-verifies the whole log, not just head and proof).

Committee sizes default to this project's cases at equal reputation (committee = the other
regions): case30 3 regions → 2, case57 6 → 5, case118 7 → 6, case300 10 → 9, plus 16.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import AuditLog, sign_tree_head
from pcnalloc.edge.audit_proofs import read_leaves
from pcnalloc.edge.cosign import Cosigner, run_round, verify_published
from pcnalloc.edge.trusted_keys import TrustedKeys

CASE_REGIONS = {"case30": 3, "case57": 6, "case118": 7, "case300": 10}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def stats_us(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=float) / 1e3
    return {"p50": round(float(np.median(a)), 1), "p90": round(float(np.quantile(a, 0.9)), 1)}


def decision_body(i: int) -> dict[str, Any]:
    """A record the size of a service decision (request, proposal, outcome)."""
    return {
        "request": {"id": f"r0-{i}", "service": "scada", "src": i % 30, "dst": (i * 7) % 30,
                    "demand_mbps": 2.0, "priority": 1},
        "proposal": i % 17, "action": i % 17, "intercepted": [], "flow_id": f"r0-{i}",
        "path": [i % 30, (i + 3) % 30, (i * 7) % 30], "grant_mbps": 2.0, "preempted": [],
        "reason": None, "latency_us": 180.0,
    }  # fmt: skip


def write_log(path: Path, key, n: int, every: int, sync_every: int) -> list[int]:
    """Write ``n`` decision records; the append times (ns)."""
    times = []
    with AuditLog(
        path, private_key=key, checkpoint_every=every, checkpoint_interval_s=None,
        sync_every=sync_every,
    ) as log:  # fmt: skip
        for i in range(n):
            t0 = time.perf_counter_ns()
            log.append("decision", decision_body(i))
            times.append(time.perf_counter_ns() - t0)
    return times


def bench_committee(
    size: int, leaves: list[bytes], every: int, repeats: int, seed: int
) -> dict[str, Any]:
    """Time ``repeats`` cosigning rounds with a committee of ``size`` (origin = region 0)."""
    regions = size + 1
    log_priv = [keys.generate_keypair()[0] for _ in range(regions)]
    co_priv = [keys.generate_keypair()[0] for _ in range(regions)]
    log_keys = TrustedKeys.of(log_priv[0].public_key(), name="origin")
    region_pubs = [k.public_key() for k in co_priv]
    rep = np.ones(regions)
    n = len(leaves)
    tree = merkle.Tree(leaves)
    old_size, new_size = n - every, n
    old_root, new_root = tree.root(old_size), tree.root()
    t: dict[str, list[int]] = {
        k: [] for k in ("sign", "proof", "proof_from_leaves", "member", "verify", "round")
    }
    for r in range(repeats):
        cosigners = [Cosigner(i, co_priv[i], log_keys) for i in range(regions)]
        old = sign_tree_head(log_priv[0], old_size, old_root, 1_000 * r)
        for c in cosigners[1:]:
            c.seen[0] = old  # each member cosigned the previous head
        t0 = time.perf_counter_ns()
        sth = sign_tree_head(log_priv[0], new_size, new_root, 1_000 * r + 60_000)
        t1 = time.perf_counter_ns()
        proof = tree.consistency_proof(old_size, new_size)
        t_proof = time.perf_counter_ns() - t1
        if r < 20:  # O(n): a few are enough
            u0 = time.perf_counter_ns()
            assert merkle.consistency_proof(leaves, old_size, new_size) == proof
            t["proof_from_leaves"].append(time.perf_counter_ns() - u0)
        c = cosigners[1]
        t2 = time.perf_counter_ns()
        c.cosign(0, r, sth, proof)
        t3 = time.perf_counter_ns()
        c.seen[0] = old
        head = run_round(0, r, sth, dict.fromkeys(range(regions), proof), cosigners, rep, 1.0, seed)
        t4 = time.perf_counter_ns()
        got = verify_published(head, region_pubs, log_keys, rep, 1.0, seed)
        t5 = time.perf_counter_ns()
        assert got == size, (got, size)
        t["sign"].append(t1 - t0)
        t["proof"].append(t_proof)
        t["member"].append(t3 - t2)
        t["round"].append(t4 - t3)
        t["verify"].append(t5 - t4)
    out = {k: stats_us(v) for k, v in t.items()}
    p50 = {k: v["p50"] for k, v in out.items()}
    grow = merkle.Tree()
    u0 = time.perf_counter_ns()
    for leaf in leaves:
        grow.append(leaf)
    out["tree_append"] = {"mean": round((time.perf_counter_ns() - u0) / 1e3 / n, 2)}
    cpu = p50["sign"] + p50["proof"] + size * p50["member"] + p50["verify"]
    crit = p50["sign"] + p50["proof"] + p50["member"] + p50["verify"]
    return {
        "committee": size,
        "regions": regions,
        "majority": size // 2 + 1,
        "stages_us": out,
        "cpu_total_us": round(cpu, 1),
        "critical_path_us": round(crit, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--committees", default="2,5,6,9,16")
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--checkpoint-every", type=int, default=1000)
    ap.add_argument("--interval-s", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=4.0, help="decisions/s of one region")
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--append-records", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    sizes = [int(x) for x in a.committees.split(",")]
    res: dict[str, Any] = {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_start": loadavg(),
        "records": a.records,
        "checkpoint_every": a.checkpoint_every,
        "checkpoint_interval_s": a.interval_s,
        "rate_per_s": a.rate,
        "repeats": a.repeats,
        "case_regions": CASE_REGIONS,
    }
    per_head_by_count = a.checkpoint_every
    per_head_by_time = min(a.checkpoint_every, max(1.0, a.rate * a.interval_s))
    res["records_per_head"] = {"count_cadence": per_head_by_count, "at_rate": per_head_by_time}
    with tempfile.TemporaryDirectory() as tmp:
        key = keys.generate_keypair()[0]
        # the audit log itself, side by side: fsync per record (the service) and per 1,000
        appends = {}
        for sync in (1, 1000):
            ns = write_log(Path(tmp) / f"a{sync}.log", key, a.append_records, 1000, sync)
            appends[f"sync_every_{sync}"] = stats_us(ns) | {
                "mean": round(float(np.mean(ns)) / 1e3, 1)
            }
        res["append_us"] = appends
        big = Path(tmp) / "big.log"
        write_log(big, key, a.records, a.checkpoint_every, 1000)
        leaves = read_leaves(big).leaves
        res["log_leaves"] = len(leaves)
        rows = []
        for size in sizes:
            row = bench_committee(size, leaves, a.checkpoint_every, a.repeats, a.seed)
            upkeep = row["stages_us"]["tree_append"]["mean"]
            leaves_cpu = (
                row["cpu_total_us"]
                - row["stages_us"]["proof"]["p50"]
                + row["stages_us"]["proof_from_leaves"]["p50"]
            )
            # head cost over the records a head covers, plus the kept tree's per-record upkeep
            row["per_decision_us"] = {
                "count_cadence": round(row["cpu_total_us"] / per_head_by_count + upkeep, 3),
                "at_rate": round(row["cpu_total_us"] / per_head_by_time + upkeep, 3),
                "count_cadence_proof_from_leaves": round(leaves_cpu / per_head_by_count, 3),
            }
            row["loadavg"] = loadavg()
            rows.append(row)
        res["committees"] = rows
        # the file-based member of `pcnalloc audit cosign` re-verifies the whole log
        res["file_member"] = file_member(Path(tmp), big, key)
    res["loadavg_end"] = loadavg()
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)


def file_member(tmp: Path, log: Path, origin_key) -> dict[str, Any]:
    """One `pcnalloc audit cosign` member on the big log (library call, 3 repeats)."""
    from pcnalloc.edge.committee import cosign_log, load_committee

    privs = [origin_key, keys.generate_keypair()[0], keys.generate_keypair()[0]]
    kd = tmp / "keys"
    kd.mkdir()
    lines = ["kappa: 1.0", "seed: 0", "regions:"]
    for i, k in enumerate(privs):
        (kd / f"r{i}.pub").write_bytes(keys.public_pem(k.public_key()))
        lines.append(f"  - {{name: r{i}, key: keys/r{i}.pub}}")
    (tmp / "committee.yaml").write_text("\n".join(lines) + "\n")
    com = load_committee(tmp / "committee.yaml")
    ns = []
    for r in range(3):
        into = tmp / f"cosigned-{r}.json"
        t0 = time.perf_counter_ns()
        cosign_log(log, com, origin="r0", round_=r, private_key=privs[1], into=into)
        ns.append(time.perf_counter_ns() - t0)
    records = len(read_leaves(log).leaves)
    return {
        "records": records,
        "ms": round(float(np.median(ns)) / 1e6, 1),
        "us_per_record": round(float(np.median(ns)) / 1e3 / records, 1),
        "loadavg": loadavg(),
    }


if __name__ == "__main__":
    main()
