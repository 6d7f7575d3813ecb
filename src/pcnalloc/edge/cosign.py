"""Committee cosigning of tree heads between regional controllers (BC-DRL's RPoS, adapted).

A region's own signature on its tree head proves only that the region wrote it; the region
(or whoever holds its key) can still rewrite its history and sign the rewrite. Cosigning
makes a head *published*: the other regional controllers check it and add their
signatures, and a verifier counts a head only when a majority of the round's committee
signed it. The committee follows the RPoS consensus of the BC-DRL paper
(``/work/shared/papers/bc-drl-secure-mec-allocation.txt`` §III-B):

- **Committee** (eqs. (4)–(5)): in round t, the regions other than the head's origin whose
  reputation is at least ``mean(R) · κ``. The paper's indicator is strict (``>``); with
  every reputation equal (the usual start, R = 1) a strict test selects nobody, so ``≥`` is
  used. Reputations come from the site-trust module
  (:class:`pcnalloc.distributed.trust.ReputationTracker`, per region) and are the state all
  regions agree on; the verifier recomputes the committee from them, so a forger cannot
  name its own committee.
- **Proposer** (eq. (6)): drawn uniformly from the committee by a generator seeded with
  ``(seed, round)``, so every region derives the same proposer and an attacker cannot know
  it before the round starts. The proposer collects the cosignatures (the paper's
  pre-prepare / prepare / commit becomes: send head and consistency proof → each member
  checks and signs → the proposer publishes the signed head).
- **What a member checks before signing**: the origin's signature on the head (its pinned
  log key), and an RFC 9162 consistency proof from the last head of that origin the member
  cosigned. So a rewrite of anything already cosigned is refused by every honest member.
- **Published**: more than half of the committee's pinned keys signed the cosign message
  (origin, round, size, root, timestamp, log key id). A rewrite therefore needs a majority
  of committee keys (the paper's §III-D time-to-tamper argument: the attacker must hold at
  least half of the committee, in every round from the rewritten one on).

Written here (no kept library does RPoS); the signatures are Ed25519 from ``cryptography``,
the proofs :mod:`pcnalloc.edge.merkle`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import FORMAT, AuditError, canonical
from pcnalloc.edge.audit_verify import check_tree_head
from pcnalloc.edge.trusted_keys import TrustedKeys

COSIGN_TYPE = "cosigned_head"


class CosignError(AuditError):
    """A head a committee member refuses to cosign, or a cosigned head that is not published."""


def committee(reputation_R: np.ndarray, kappa: float, origin: int) -> np.ndarray:
    """Indices of the regions (origin excluded) with reputation ≥ mean × κ (eqs. (4)–(5))."""
    rep = np.asarray(reputation_R, dtype=float)
    ok = rep >= rep.mean() * kappa
    ok[origin] = False
    return np.flatnonzero(ok)


def proposer(members: np.ndarray, seed: int, round_: int) -> int:
    """The round's proposer, uniform over the committee from ``(seed, round)`` (eq. (6))."""
    if members.size == 0:
        raise CosignError(f"round {round_}: no region qualifies for the committee")
    rng = np.random.default_rng([seed, round_])
    return int(members[int(rng.integers(members.size))])


def cosign_message(origin: int, round_: int, sth: dict[str, Any]) -> bytes:
    """The bytes a cosignature covers (domain-separated by format and type)."""
    return canonical(
        {
            "format": FORMAT,
            "type": COSIGN_TYPE,
            "origin": origin,
            "round": round_,
            "tree_size": sth["tree_size"],
            "root": sth["root"],
            "timestamp_ms": sth["timestamp_ms"],
            "key_id": sth["key_id"],
        }
    )


@dataclass
class CosignedHead:
    """A tree head with the committee's cosignatures (key id → base64 Ed25519 signature)."""

    origin: int
    round: int
    sth: dict[str, Any]
    proposer: str
    cosigs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "type": COSIGN_TYPE,
            "origin": self.origin,
            "round": self.round,
            "sth": self.sth,
            "proposer": self.proposer,
            "cosigs": dict(sorted(self.cosigs.items())),
        }


class Cosigner:
    """One regional controller's cosigning side.

    Args:
        region: this controller's region index.
        private_key: its Ed25519 key.
        log_keys: pinned log-signing keys of the regions whose heads it cosigns. Any key
            in it is accepted for any origin; to bind a head to its origin, pass only the
            origin's key (as :func:`pcnalloc.edge.committee.cosign_log` does).
    """

    def __init__(self, region: int, private_key: Ed25519PrivateKey, log_keys: TrustedKeys) -> None:
        self.region, self._key, self.log_keys = region, private_key, log_keys
        self.key_id = keys.key_id(private_key.public_key())
        self.seen: dict[int, dict[str, Any]] = {}  # origin → last head cosigned

    def cosign(self, origin: int, round_: int, sth: dict[str, Any], proof: Sequence[bytes]) -> str:
        """Check a head (origin's signature, consistency with the last one cosigned) and sign.

        Raises:
            CosignError: a head not signed by the origin's pinned key, or not consistent
                with the last head of that origin this controller cosigned (a rewrite).
        """
        try:
            check_tree_head(sth, self.log_keys, f"head of region {origin}")
        except AuditError as err:
            raise CosignError(f"region {self.region} refuses: {err}") from None
        last = self.seen.get(origin)
        if last is not None:
            try:
                merkle.verify_consistency(
                    last["tree_size"],
                    sth["tree_size"],
                    proof,
                    bytes.fromhex(last["root"]),
                    bytes.fromhex(sth["root"]),
                )
            except merkle.ProofError as err:
                raise CosignError(
                    f"region {self.region} refuses the head of region {origin} (size "
                    f"{sth['tree_size']}): not consistent with the head of size "
                    f"{last['tree_size']} it cosigned ({err}) — a rewrite"
                ) from None
        sig = self._key.sign(cosign_message(origin, round_, sth))
        self.seen[origin] = sth
        return base64.b64encode(sig).decode()


def run_round(
    origin: int,
    round_: int,
    sth: dict[str, Any],
    proofs: dict[int, Sequence[bytes]],
    cosigners: Sequence[Cosigner],
    reputation_R: np.ndarray,
    kappa: float,
    seed: int,
) -> CosignedHead:
    """One cosigning round: committee, proposer, each member's check and signature.

    ``proofs[r]`` is the consistency proof from the last head region ``r`` cosigned to
    ``sth`` (the origin serves it from its log). Members that refuse simply do not sign.
    """
    members = committee(reputation_R, kappa, origin)
    prop = proposer(members, seed, round_)
    head = CosignedHead(origin, round_, sth, cosigners[prop].key_id)
    for r in members.tolist():
        try:
            head.cosigs[cosigners[r].key_id] = cosigners[r].cosign(
                origin, round_, sth, proofs.get(r, [])
            )
        except CosignError:
            continue
    return head


def verify_published(
    head: CosignedHead | dict[str, Any],
    region_keys: Sequence[Ed25519PublicKey],
    log_keys: TrustedKeys,
    reputation_R: np.ndarray,
    kappa: float,
    seed: int,
) -> int:
    """Check that a cosigned head is published: a majority of its round's committee signed.

    The committee is recomputed from the round's reputations (the forger's list is not
    read); only signatures by the pinned keys of committee members count.

    Returns:
        The number of valid committee cosignatures.

    Raises:
        CosignError: the head itself does not verify, the proposer is not the round's, or
            the committee signatures are not a majority.
    """
    h = head.to_json() if isinstance(head, CosignedHead) else head
    if not isinstance(h, dict) or h.get("type") != COSIGN_TYPE or h.get("format") != FORMAT:
        raise CosignError(f"not a {FORMAT} cosigned head")
    origin, round_, sth = int(h["origin"]), int(h["round"]), h["sth"]
    check_tree_head(sth, log_keys, f"head of region {origin}")
    members = committee(reputation_R, kappa, origin)
    ids = [keys.key_id(region_keys[r]) for r in members.tolist()]
    expected = ids[members.tolist().index(proposer(members, seed, round_))]
    if h.get("proposer") != expected:
        raise CosignError(
            f"round {round_}: proposer {h.get('proposer')} is not the round's ({expected})"
        )
    msg = cosign_message(origin, round_, sth)
    cosigs = h.get("cosigs") or {}
    valid = 0
    for r, kid in zip(members.tolist(), ids, strict=True):
        sig = cosigs.get(kid)
        if not isinstance(sig, str):
            continue
        try:
            raw = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        valid += keys.verify_signature(region_keys[r], msg, raw)
    need = members.size // 2 + 1
    if valid < need:
        raise CosignError(
            f"head of region {origin}, round {round_}, size {sth['tree_size']}: {valid} of "
            f"{members.size} committee signatures; a majority ({need}) is needed to publish"
        )
    return valid


__all__ = [
    "COSIGN_TYPE",
    "CosignError",
    "CosignedHead",
    "Cosigner",
    "committee",
    "cosign_message",
    "proposer",
    "run_round",
    "verify_published",
]
