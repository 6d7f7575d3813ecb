"""Cosigning between regions through files: the committee file, a member's cosignature, the
auditor's check (``pcnalloc audit cosign|verify-cosigned``).

The protocol of :mod:`pcnalloc.edge.cosign` (RPoS committee, random proposer, a head is
published when a committee majority signed it) needs three things an auditor can hold:

* a **committee file** (YAML), handed out by the operator like a trusted-keys file::

      # pcnalloc cosigning committee
      kappa: 1.0        # committee = regions (origin excluded) with reputation ≥ mean × κ
      seed: 11          # proposer seed, shared by every region
      regions:          # region index = position in this list
        - {name: north, key: keys/north.pub, reputation: 1.0}
        - {name: south, key: keys/south.pub, reputation: 0.97}
        - {name: east,  key: keys/east.pub}          # reputation defaults to 1.0

  One Ed25519 key per region (a ``pcnalloc keys new`` key): it signs the region's own tree
  heads and its cosignatures of the others' (the two messages are domain-separated by
  their ``type``). A key is given as PEM text or a path relative to the file. The
  reputations are the agreed values (:class:`pcnalloc.distributed.trust.ReputationTracker`)
  for the rounds the file covers; the verifier recomputes the committee from them, never
  from the cosigned head.

* a **cosigned head** (JSON, :class:`pcnalloc.edge.cosign.CosignedHead`): origin, round,
  the origin's signed tree head, the round's proposer and the cosignatures by key id. It is
  built up by the members: each one runs :func:`cosign_log`, which verifies the origin's log
  with the origin's key from the committee file, checks it extends the head this member
  cosigned last (``previous``: a rewrite of anything already cosigned is refused), and adds
  its signature to the file.

* the check, :func:`verify_cosigned`: a committee majority signed, and (given the log) the
  log still extends the cosigned head.

Written here because the file formats are this project's; the cryptography is
:mod:`pcnalloc.edge.cosign`, :mod:`pcnalloc.edge.audit_verify` and ``cryptography``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from pcnalloc.edge import keys, merkle
from pcnalloc.edge.audit import FORMAT, AuditError
from pcnalloc.edge.audit_proofs import read_leaves
from pcnalloc.edge.audit_verify import check_tree_head, verify
from pcnalloc.edge.cosign import (
    COSIGN_TYPE,
    CosignedHead,
    Cosigner,
    CosignError,
    committee,
    proposer,
    verify_published,
)
from pcnalloc.edge.trusted_keys import TrustedKeys

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"  # as in a trusted-keys file


class _Region(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME)
    key: str = Field(min_length=1)
    reputation: float = Field(1.0, ge=0.0, le=1.0, allow_inf_nan=False)


class _CommitteeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kappa: float = Field(gt=0.0, allow_inf_nan=False)
    seed: int = Field(ge=0)
    regions: list[_Region] = Field(min_length=2)


@dataclass(frozen=True)
class Committee:
    """The regions that cosign each other's heads, as the committee file describes them.

    Attributes:
        names: region names, by region index.
        keys: each region's pinned Ed25519 public key, by region index.
        reputation_R: the agreed reputations, by region index.
        kappa: committee threshold coefficient κ.
        seed: proposer seed.
    """

    names: tuple[str, ...]
    keys: tuple[Ed25519PublicKey, ...]
    reputation_R: np.ndarray
    kappa: float
    seed: int

    def index(self, name: str) -> int:
        """Region index of ``name``.

        Raises:
            AuditError: an unknown name (the accepted ones are named).
        """
        if name not in self.names:
            raise AuditError(
                f"region {name!r} is not in the committee file; accepted: " + ", ".join(self.names)
            )
        return self.names.index(name)

    def log_key(self, origin: int) -> TrustedKeys:
        """Only the origin's key: a head of region ``origin`` signed by another region's key
        is not that region's head."""
        return TrustedKeys.of(self.keys[origin], name=self.names[origin])

    def members(self, origin: int) -> list[int]:
        """The committee for heads of ``origin`` (eqs. (4)–(5))."""
        return committee(self.reputation_R, self.kappa, origin).tolist()


def load_committee(path: str | Path) -> Committee:
    """Read a committee file (format in the module docstring).

    Raises:
        AuditError: missing or malformed file, a key that is no Ed25519 PEM public key, one
            key or name listed twice.
    """
    import yaml

    from pcnalloc.config import build
    from pcnalloc.errors import ConfigError

    p = Path(path)
    where = f"committee file {str(p)!r}"
    if not p.is_file():
        raise AuditError(f"{where} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise AuditError(f"{where} is not YAML ({' '.join(str(err).split())})") from None
    if not isinstance(data, dict):
        raise AuditError(
            f"{where} holds {type(data).__name__}; accepted: a mapping with kappa, seed, "
            "regions (docs/audit.md)"
        )
    try:
        spec = build(_CommitteeFile, data, where)
    except ConfigError as err:
        raise AuditError(str(err)) from None
    pubs: list[Ed25519PublicKey] = []
    seen: dict[str, str] = {}
    for r in spec.regions:
        try:
            if r.key.lstrip().startswith("-----BEGIN"):
                pub = keys.load_public_key(r.key.strip().encode() + b"\n")
            else:
                kp = Path(r.key)
                pub = keys.load_public_key(kp if kp.is_absolute() else p.parent / kp)
        except keys.KeyFileError as err:
            raise AuditError(f"{where}: region {r.name!r}: {err}") from None
        kid = keys.key_id(pub)
        if kid in seen:
            raise AuditError(
                f"{where}: regions {seen[kid]!r} and {r.name!r} have the same key {kid}; "
                "each region needs its own key"
            )
        seen[kid] = r.name
        pubs.append(pub)
    names = tuple(r.name for r in spec.regions)
    if len(set(names)) != len(names):
        raise AuditError(f"{where}: a region name is listed twice ({', '.join(names)})")
    return Committee(
        names, tuple(pubs), np.array([r.reputation for r in spec.regions]), spec.kappa, spec.seed
    )


def load_cosigned_head(path: str | Path, com: Committee) -> dict[str, Any]:
    """Read a cosigned head file and check its shape (not its signatures).

    Raises:
        AuditError: missing file, not JSON, or fields of the wrong type or range.
    """
    p = Path(path)
    where = f"cosigned head {str(p)!r}"
    if not p.is_file():
        raise AuditError(f"{where} does not exist")
    try:
        h = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError):
        raise AuditError(
            f"{where} is not JSON; accepted: the file `pcnalloc audit cosign` writes"
        ) from None
    ok = (
        isinstance(h, dict)
        and h.get("format") == FORMAT
        and h.get("type") == COSIGN_TYPE
        and type(h.get("origin")) is int
        and 0 <= h["origin"] < len(com.names)
        and type(h.get("round")) is int
        and h["round"] >= 0
        and isinstance(h.get("sth"), dict)
        and isinstance(h.get("proposer"), str)
        and isinstance(h.get("cosigs"), dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in h["cosigs"].items())
    )
    if not ok:
        raise AuditError(
            f"{where} is not a {FORMAT} cosigned head of this committee; accepted: JSON with "
            f"format, type {COSIGN_TYPE!r}, origin (0..{len(com.names) - 1}), round ≥ 0, sth, "
            "proposer, cosigs"
        )
    return h


@dataclass(frozen=True)
class CosignResult:
    """What :func:`cosign_log` did: the member, the head it signed, how many signatures the
    file now holds and how many publish it."""

    member: str
    origin: str
    round: int
    tree_size: int
    signatures: int
    committee_size: int

    def __str__(self) -> str:
        need = self.committee_size // 2 + 1
        state = "published" if self.signatures >= need else f"needs {need} to publish"
        return (
            f"{self.member} cosigned the head of {self.origin} (size {self.tree_size}), round "
            f"{self.round}: {self.signatures} of {self.committee_size} committee signatures "
            f"({state})"
        )


def cosign_log(
    log: str | Path,
    com: Committee,
    *,
    origin: str,
    round_: int,
    private_key: Ed25519PrivateKey,
    into: str | Path,
    previous: str | Path | None = None,
) -> CosignResult:
    """A committee member checks the origin's log and adds its cosignature to ``into``.

    Args:
        log: the origin's audit log.
        com: the committee.
        origin: the origin's region name.
        round_: the cosigning round (shared counter; it seeds the proposer).
        private_key: this member's key (its public key must be a committee member's).
        into: the cosigned head file of this round: created if missing, otherwise it must
            hold the same origin, round and head, and the signature is added (atomically).
        previous: the cosigned head of this origin this member signed last; the log must
            extend it (RFC 9162 consistency), so a rewrite of it is refused.

    Raises:
        AuditError: bad input — the key is no region's, the region is not in this round's
            committee, ``into`` holds another head.
        CosignError: the member refuses — the log does not verify with the origin's key, or
            it does not extend ``previous``.
    """
    from pcnalloc.fileio import write_atomic

    o = com.index(origin)
    kid = keys.key_id(private_key.public_key())
    ids = [keys.key_id(k) for k in com.keys]
    if kid not in ids:
        raise AuditError(f"signing key {kid} is no region's key in the committee file")
    me = ids.index(kid)
    members = com.members(o)
    if me not in members:
        raise AuditError(
            f"{com.names[me]} is not in the committee for heads of {origin} (reputation ≥ mean "
            f"× κ = {com.reputation_R.mean() * com.kappa:.3g}; members: "
            + (", ".join(com.names[r] for r in members) or "none")
            + ")"
        )
    origin_key = com.log_key(o)
    prev_sth = None
    if previous is not None:
        prev = load_cosigned_head(previous, com)
        if prev["origin"] != o:
            raise AuditError(f"previous cosigned head {str(previous)!r} is not of {origin}")
        prev_sth = check_tree_head(prev["sth"], origin_key, f"previous head {str(previous)!r}")
    res = verify(log, origin_key, published_head=prev_sth, allow_unsigned_tail=True)
    if not res.ok:
        raise CosignError(f"{com.names[me]} refuses the log of {origin}: {res}")
    leaves = read_leaves(log)
    sth = check_tree_head(leaves.heads[res.signed_upto + 1], origin_key)
    signer = Cosigner(me, private_key, origin_key)
    proof: list[bytes] = []
    if prev_sth is not None:
        signer.seen[o] = prev_sth
        proof = merkle.consistency_proof(leaves.leaves, prev_sth["tree_size"], sth["tree_size"])
    sig = signer.cosign(o, round_, sth, proof)
    arr = np.asarray(members)
    prop = ids[proposer(arr, com.seed, round_)]
    head = CosignedHead(o, round_, sth, prop)
    if Path(into).exists():
        old = load_cosigned_head(into, com)
        if (old["origin"], old["round"], old["sth"]) != (o, round_, sth):
            raise AuditError(
                f"{str(into)!r} holds the head of {com.names[old['origin']]} (size "
                f"{old['sth'].get('tree_size')}), round {old['round']}, not this one (size "
                f"{sth['tree_size']}, round {round_}); give another file"
            )
        head.cosigs.update(old["cosigs"])
    head.cosigs[kid] = sig
    write_atomic(Path(into), json.dumps(head.to_json(), indent=1, sort_keys=True) + "\n")
    member_ids = {ids[r] for r in members}
    return CosignResult(
        com.names[me],
        origin,
        round_,
        sth["tree_size"],
        len(member_ids & set(head.cosigs)),
        len(members),
    )


@dataclass(frozen=True)
class CosignedVerdict:
    """A published cosigned head: who, which head, how many committee signatures."""

    origin: str
    round: int
    tree_size: int
    root: str
    signatures: int
    committee_size: int
    log: str | None

    def __str__(self) -> str:
        tail = f"; log {self.log} extends it" if self.log else ""
        return (
            f"OK: head of {self.origin} (size {self.tree_size}, root {self.root[:16]}…), round "
            f"{self.round}, published by {self.signatures} of {self.committee_size} committee "
            f"signatures (majority {self.committee_size // 2 + 1}){tail}"
        )


def verify_cosigned(
    head_path: str | Path, com: Committee, *, log: str | Path | None = None
) -> CosignedVerdict:
    """The auditor's check: a committee majority signed the head; the log (if given) extends it.

    Raises:
        AuditError: bad input (a malformed file).
        CosignError: not published (a forgery or too few signatures), the origin's own
            signature on the head is wrong, or the log no longer extends the head.
    """
    h = load_cosigned_head(head_path, com)
    o = h["origin"]
    origin_key = com.log_key(o)
    try:
        n = verify_published(h, list(com.keys), origin_key, com.reputation_R, com.kappa, com.seed)
    except CosignError:
        raise
    except AuditError as err:  # the origin's own head signature
        raise CosignError(f"cosigned head {str(head_path)!r}: {err}") from None
    if log is not None:
        res = verify(log, origin_key, published_head=h["sth"], allow_unsigned_tail=True)
        if not res.ok:
            raise CosignError(
                f"log {str(log)!r} does not extend the cosigned head of {com.names[o]}: {res}"
            )
    return CosignedVerdict(
        com.names[o],
        h["round"],
        h["sth"]["tree_size"],
        h["sth"]["root"],
        n,
        len(com.members(o)),
        None if log is None else str(log),
    )


__all__ = [
    "Committee",
    "CosignResult",
    "CosignedVerdict",
    "cosign_log",
    "load_committee",
    "load_cosigned_head",
    "verify_cosigned",
]
