"""Committee cosigning (RPoS): a head is published by a committee majority; a rewrite needs
a majority of committee keys, a minority forgery is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from pcnalloc.distributed.trust import ReputationTracker
from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import AuditLog, record_hash
from pcnalloc.edge.audit_proofs import read_leaves
from pcnalloc.edge.cosign import (
    CosignedHead,
    Cosigner,
    CosignError,
    committee,
    cosign_message,
    proposer,
    run_round,
    verify_published,
)
from pcnalloc.edge.trusted_keys import TrustedKeys

R, ORIGIN, KAPPA, SEED = 6, 0, 1.0, 11


@pytest.fixture
def world():
    """Six regions: log keys, cosigning keys, reputations (region 5 drops traffic)."""
    log_priv = [keys.generate_keypair()[0] for _ in range(R)]
    co_priv = [keys.generate_keypair()[0] for _ in range(R)]
    log_keys = TrustedKeys.of(*(k.public_key() for k in log_priv), name="region log")
    cosigners = [Cosigner(r, co_priv[r], log_keys) for r in range(R)]
    rep = ReputationTracker(R)
    for _ in range(10):
        pos = np.full(R, 20)
        neg = np.zeros(R, int)
        pos[5], neg[5] = 2, 18
        rep.update(pos, neg)
    return log_priv, co_priv, log_keys, cosigners, rep.reputation_N.copy()


def heads(path: Path) -> list[dict]:
    return [read_leaves(path).heads[s] for s in sorted(read_leaves(path).heads)]


def proof(path: Path, old: int, new: int) -> list[bytes]:
    return merkle.consistency_proof(read_leaves(path).leaves, old, new)


def test_committee_and_proposer_follow_reputation(world) -> None:
    *_, rep = world
    members = committee(rep, KAPPA, ORIGIN)
    assert members.tolist() == [1, 2, 3, 4]  # the origin and the dropping region are out
    props = {proposer(members, SEED, t) for t in range(40)}
    assert props == {1, 2, 3, 4}  # random, not the highest reputation every round
    assert proposer(members, SEED, 7) == proposer(members, SEED, 7)  # every region agrees


def test_rewrite_needs_a_committee_majority(world, tmp_path: Path) -> None:
    log_priv, co_priv, log_keys, cosigners, rep = world
    region_pubs = [k.public_key() for k in co_priv]
    log = tmp_path / "r0.jsonl"
    w = AuditLog(log, private_key=log_priv[ORIGIN], checkpoint_every=20)
    for i in range(50):
        w.append("decision", {"i": i})
    w.checkpoint()
    h1 = heads(log)[-1]
    first = run_round(ORIGIN, 1, h1, {}, cosigners, rep, KAPPA, SEED)
    assert verify_published(first, region_pubs, log_keys, rep, KAPPA, SEED) == 4
    for i in range(50, 80):  # an honest extension: consistent, published again
        w.append("decision", {"i": i})
    w.close()
    h2 = heads(log)[-1]
    p = proof(log, h1["tree_size"], h2["tree_size"])
    second = run_round(ORIGIN, 2, h2, dict.fromkeys(range(R), p), cosigners, rep, KAPPA, SEED)
    assert verify_published(second, region_pubs, log_keys, rep, KAPPA, SEED) == 4

    # The origin's key is stolen: record 5 rewritten, chain and heads redone and re-signed.
    lines = [json.loads(x) for x in log.read_bytes().splitlines()]
    lines[5]["body"]["i"] = -1
    forged = tmp_path / "forged.jsonl"
    rewrite(lines, forged, log_priv[ORIGIN])
    h3 = heads(forged)[-1]
    assert h3["tree_size"] == h2["tree_size"] and h3["root"] != h2["root"]
    fake = [b"\x00" * 32]
    third = run_round(ORIGIN, 3, h3, dict.fromkeys(range(R), fake), cosigners, rep, KAPPA, SEED)
    assert third.cosigs == {}  # every honest member refuses the inconsistent head
    with pytest.raises(CosignError, match=r"refuses .* a rewrite"):
        cosigners[1].cosign(ORIGIN, 3, h3, fake)

    def forge(stolen: list[int]) -> CosignedHead:
        members = committee(rep, KAPPA, ORIGIN)
        prop = cosigners[proposer(members, SEED, 3)].key_id
        msg = cosign_message(ORIGIN, 3, h3)
        sigs = {
            keys.key_id(region_pubs[r]): base64.b64encode(co_priv[r].sign(msg)).decode()
            for r in stolen
        }
        return CosignedHead(ORIGIN, 3, h3, prop, sigs)

    # planted minority forgeries: refused
    for stolen in ([1], [1, 5], [1, 2], [1, 2, 5]):  # region 5 is not in the committee
        with pytest.raises(CosignError, match="a majority \\(3\\) is needed"):
            verify_published(forge(stolen), region_pubs, log_keys, rep, KAPPA, SEED)
    # a majority of committee keys publishes the rewrite: that is what tampering costs
    assert verify_published(forge([1, 2, 3]), region_pubs, log_keys, rep, KAPPA, SEED) == 3


def test_forged_signatures_and_proposers_do_not_count(world, tmp_path: Path) -> None:
    log_priv, co_priv, log_keys, cosigners, rep = world
    region_pubs = [k.public_key() for k in co_priv]
    log = tmp_path / "r0.jsonl"
    with AuditLog(log, private_key=log_priv[ORIGIN]) as w:
        w.append("decision", {"i": 0})
    head = run_round(ORIGIN, 1, heads(log)[-1], {}, cosigners, rep, KAPPA, SEED).to_json()
    attacker = keys.generate_keypair()[0]
    msg = cosign_message(ORIGIN, 1, head["sth"])
    bad = {kid: base64.b64encode(attacker.sign(msg)).decode() for kid in head["cosigs"]}
    with pytest.raises(CosignError, match="0 of 4"):
        verify_published({**head, "cosigs": bad}, region_pubs, log_keys, rep, KAPPA, SEED)
    other = next(c.key_id for c in cosigners[1:5] if c.key_id != head["proposer"])
    with pytest.raises(CosignError, match="proposer"):
        verify_published({**head, "proposer": other}, region_pubs, log_keys, rep, KAPPA, SEED)
    moved = {**head, "round": 2}  # signatures bind the round
    with pytest.raises(CosignError):
        verify_published(moved, region_pubs, log_keys, rep, KAPPA, SEED)


def rewrite(recs: list[dict], out: Path, key) -> None:
    """Re-chain records and recompute every tree head with ``key`` (a full rewrite)."""
    from pcnalloc.edge.audit import GENESIS, encode_record, sign_tree_head

    prev, leaves, data = GENESIS, [], []
    for r in recs:
        r = {k: v for k, v in r.items() if k != "hash"}
        r["prev"] = prev
        if r["type"] == "tree_head":
            r["body"] = sign_tree_head(
                key, len(leaves), merkle.root(leaves), r["body"]["timestamp_ms"]
            )
        line, h = encode_record(r)
        assert h == record_hash({**r, "hash": h})
        leaves.append(merkle.leaf_hash(line))
        data.append(line)
        prev = h
    out.write_bytes(b"\n".join(data) + b"\n")
