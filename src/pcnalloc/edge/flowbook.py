"""The live flow book of a region's service, and its exact rebuild from the audit log.

:class:`FlowBook` is everything a service's decisions change: the
:class:`~pcnalloc.envs.state.NetworkState` (pools and flows), the public flow ids, the expiry
queue, the request history the features read, the next request number and the decision
counters. The service changes it only through :meth:`FlowBook.admit`, :meth:`release` and
:meth:`expire`, and writes one audit record per change (see :mod:`pcnalloc.edge.live`):

========== ================================================================================
record     body (what :meth:`FlowBook.apply` reads back)
========== ================================================================================
decision   the intent, written by :meth:`EdgeAgent.decide` before execution: request,
           proposal, executed action, interceptions with rule ids and reasons
outcome    after execution: request id and number, time, class, sites, holding, outcome,
           grant, refusal reason, pre-empted flows (public and state ids) and the admitted
           flow (public and state id, slice, priority, kb/s, links, backup links, path,
           end time, value)
expiry     flows released at the end of their holding time (public and state ids)
release    a flow released by ``DELETE /v1/flows/{id}``
restart    the service started again on this log (what it resumed)
========== ================================================================================

Replaying the records in order on a fresh book (:func:`replay`) rebuilds the live book
exactly: the same pools, flows (and state flow ids, so the pre-emption order is the same),
expiry queue, history and counters (:meth:`FlowBook.snapshot`, tested). A decision whose
outcome record is missing (the process died between the two) changed nothing and was never
acknowledged; its request number is still spent, so ids continue after it. Every step is
checked while replaying (the flow pre-empted is the one named, the admitted flow gets the
recorded state id, capacity is there); a log that does not rebuild raises
:class:`ReplayError`.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.edge.audit import GENESIS, AuditError, record_hash
from pcnalloc.envs.observation import History
from pcnalloc.envs.state import Flow, NetworkState
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.catalog import Catalog
from pcnalloc.traffic.generator import Request

COUNTED: tuple[str, ...] = ("decisions", "accepted", "rejected", "blocked", "refused")
COUNTED += ("intercepted", "preempted", "released", "expired")
"""Counters the log rebuilds (malformed and unauthorised requests are not logged)."""


class ReplayError(AuditError):
    """An audit log whose records do not rebuild a consistent service state."""


class FlowBook:
    """Pools, public flow ids, expiry queue, history and counters of one service.

    Args:
        network: the communication network.
        catalog: the service catalog.
        history_w: history window W of the features.
    """

    def __init__(self, network: CommNetwork, catalog: Catalog, history_w: int) -> None:
        self.net, self.catalog = network, catalog
        self.state = NetworkState(network)
        self.history = History(history_w, catalog)
        self.flow_of: dict[str, int] = {}  # public flow id → state flow id
        self.public_of: dict[int, str] = {}
        self._expiry: list[tuple[float, int]] = []
        self.counts: Counter[str] = Counter()
        self.n_requests = 0
        self.last_time_s = 0.0
        self.records = 0

    # ------------------------------------------------------------------ changes
    def admit(self, public_id: str, **flow: Any) -> Flow:
        """Reserve a flow (``NetworkState.admit`` keywords) under a public id."""
        f = self.state.admit(**flow)
        heapq.heappush(self._expiry, (f.end_s, f.id))
        self.flow_of[public_id], self.public_of[f.id] = f.id, public_id
        return f

    def release(self, public_id: str) -> Flow | None:
        """Free an active flow by public id; None if it is not active."""
        fid = self.flow_of.pop(public_id, None)
        if fid is None:
            return None
        del self.public_of[fid]
        self.counts["released"] += 1
        return self.state.release(fid)

    def preempt(self, fid: int) -> str | None:
        """Free a flow by state id (a pre-emption victim); its public id, None if gone."""
        if self.state.release(fid) is None:
            return None
        pub = self.public_of.pop(fid)
        del self.flow_of[pub]
        return pub

    def expire(self, now: float) -> list[tuple[str, int]]:
        """Release every flow whose holding time ended at or before ``now``; (public, state)
        ids of those released."""
        q, out = self._expiry, []
        while q and q[0][0] <= now:
            _, fid = heapq.heappop(q)
            pub = self.preempt(fid)
            if pub is not None:
                out.append((pub, fid))
        self.counts["expired"] += len(out)
        return out

    def next_public_id(self, prefix: str) -> str:
        """The automatic id of the next request: ``prefix`` + request number, skipping any id
        a client already holds (one namespace for client and automatic ids)."""
        base = rid = f"{prefix}{self.n_requests}"
        k = 0
        while rid in self.flow_of:
            k += 1
            rid = f"{base}.{k}"
        return rid

    def decided(self, req: Request, outcome: str, grant: float, intercepted: bool) -> None:
        """Account one executed decision (history and counters)."""
        self.history.push(req, grant, outcome == "accepted")
        self.counts["decisions"] += 1
        self.counts[outcome] += 1
        self.counts["intercepted"] += bool(intercepted)

    # ------------------------------------------------------------------ replay
    def apply(self, rec: dict[str, Any]) -> None:
        """Re-execute one audit record (records of other types change nothing)."""
        t, b = rec["type"], rec["body"]
        self.records += 1
        try:
            if t == "decision":
                self.n_requests = max(self.n_requests, int(b["request"]["id"]) + 1)
            elif t == "outcome":
                self._apply_outcome(b)
            elif t == "expiry":
                for pub, fid in b["flows"]:
                    self._gone(self.preempt(int(fid)), pub, fid, "expired")
                self.counts["expired"] += len(b["flows"])
                self.last_time_s = max(self.last_time_s, float(b["time_s"]))
            elif t == "release":
                f = self.release(str(b["flow_id"]))
                if f is None or ("state_id" in b and f.id != b["state_id"]):
                    raise ReplayError(
                        f"record {rec['seq']}: release of {b['flow_id']!r}, which is not active"
                    )
                self.last_time_s = max(self.last_time_s, float(b["time_s"]))
        except ReplayError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
            raise ReplayError(
                f"record {rec.get('seq')} ({t}) does not re-execute: {type(err).__name__}: {err}"
            ) from None

    def _gone(self, got: str | None, pub: str, fid: int, how: str) -> None:
        if got != pub:
            raise ReplayError(
                f"flow {pub!r} (state id {fid}) {how} in the log, but the replayed state "
                f"holds {'no such flow' if got is None else repr(got)} (a record is missing)"
            )

    def _apply_outcome(self, b: dict[str, Any]) -> None:
        c = self.catalog.names.index(b["cls"])
        now = float(b["time_s"])
        for pub, fid in b["preempted"]:
            self._gone(self.preempt(int(fid)), pub, fid, "pre-empted")
        self.counts["preempted"] += len(b["preempted"])
        f = b["flow"]
        if f is not None:
            got = self.admit(
                str(f["flow_id"]),
                cls=c,
                slice_=int(f["slice"]),
                priority=int(f["priority"]),
                kbps=int(f["kbps"]),
                links=np.asarray(f["links"], dtype=np.int64),
                backup_links=np.asarray(f["backup_links"], dtype=np.int64),
                end_s=float(f["end_s"]),
                src=int(b["src"]),
                dst=int(b["dst"]),
                value=float(f["value"]),
                counted=True,
            )
            if got.id != f["state_id"]:
                raise ReplayError(
                    f"flow {f['flow_id']!r} replays as state id {got.id}, the log says "
                    f"{f['state_id']} (an admission is missing or extra)"
                )
        req = Request(int(b["n"]), now, c, int(b["src"]), int(b["dst"]), float(b["holding_s"]))
        self.decided(req, b["outcome"], float(b["grant"]), bool(b["intercepted"]))
        self.n_requests = max(self.n_requests, req.id + 1)
        self.last_time_s = max(self.last_time_s, now)

    # ------------------------------------------------------------------ comparison
    def snapshot(self) -> dict[str, Any]:
        """Plain data of everything a decision changes (equal for the live book and a replay)."""
        st, h = self.state, self.history
        flows = sorted(
            (
                self.public_of[f.id],
                f.id,
                f.cls,
                f.slice,
                f.priority,
                f.kbps,
                tuple(int(e) for e in f.links),
                tuple(int(e) for e in f.backup_links),
                f.end_s,
                f.src,
                f.dst,
                f.value,
            )
            for f in st.flows.values()
        )
        live = sorted((e, fid) for e, fid in self._expiry if fid in st.flows)
        hist = hashlib.sha256(h._rows.tobytes() + h._stats.tobytes()).hexdigest()
        return {
            "pools_sha256": hashlib.sha256(st.used_ESP1.tobytes()).hexdigest(),
            "used_kbps": int(st.used_ES1[:-1].sum()),
            "flows": flows,
            "ids": sorted(self.flow_of.items()),
            "expiry": live,
            "next_state_id": st._next_id,
            "n_requests": self.n_requests,
            "history": [hist, h._head, h.n, h.last_t],
            "counts": {k: int(self.counts[k]) for k in COUNTED},
        }


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """The complete records of a log, with their hash chain checked.

    Raises:
        AuditError: a torn tail, a line that is not a record, or a broken chain.
    """
    p = Path(path)
    data = p.read_bytes()
    lines = data.split(b"\n")
    if lines.pop():
        raise AuditError(
            f"audit log {str(p)!r} ends in a torn record; run `pcnalloc audit repair` first"
        )
    out, prev = [], GENESIS
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
            ok = isinstance(rec, dict) and rec.get("seq") == i and rec.get("prev") == prev
            ok = ok and record_hash(rec) == rec["hash"]
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise AuditError(
                f"audit log {str(p)!r}: record {i} does not chain (edited, dropped or "
                "reordered); run `pcnalloc audit verify`"
            )
        out.append(rec)
        prev = rec["hash"]
    return out


def replay(
    records: str | Path | Iterable[dict[str, Any]],
    network: CommNetwork,
    catalog: Catalog,
    history_w: int,
) -> FlowBook:
    """Rebuild a service's flow book from its log (a path, chain-checked) or its records.

    Raises:
        ReplayError: the records do not re-execute (a missing or altered record).
    """
    recs = read_records(records) if isinstance(records, (str, Path)) else records
    book = FlowBook(network, catalog, history_w)
    for rec in recs:
        book.apply(rec)
    return book


__all__ = ["COUNTED", "FlowBook", "ReplayError", "read_records", "replay"]
