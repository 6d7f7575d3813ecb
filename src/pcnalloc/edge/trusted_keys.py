"""Pinned public keys of a verifier: one PEM key, or a trusted-keys file of named keys.

Trusted-keys file (YAML): a mapping from a name to an Ed25519 public key, given as PEM text
or as the path of a PEM file (relative to the trusted-keys file)::

    # pcnalloc trusted keys
    operator: |
      -----BEGIN PUBLIC KEY-----
      MCowBQYDK2VwAyEA…
      -----END PUBLIC KEY-----
    region-1: keys/region-1.pub
Nothing here reads a key stored beside a log: the verifier names its keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pcnalloc.edge import keys
from pcnalloc.edge.audit import AuditError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


@dataclass(frozen=True)
class TrustedKeys:
    """Public keys the verifier pins, by key id (first 16 hex digits of SHA-256 of the key).

    Attributes:
        by_id: key id → (name, key).
    """

    by_id: Mapping[str, tuple[str, Ed25519PublicKey]]

    @classmethod
    def of(cls, *pubs: Ed25519PublicKey, name: str = "pinned") -> TrustedKeys:
        return cls({keys.key_id(k): (name, k) for k in pubs})

    def get(self, kid: object) -> Ed25519PublicKey | None:
        entry = self.by_id.get(kid) if isinstance(kid, str) else None
        return entry[1] if entry else None

    def describe(self) -> str:
        return ", ".join(f"{n}={kid}" for kid, (n, _) in sorted(self.by_id.items()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_id)


def load_trusted_keys(path: str | Path) -> TrustedKeys:
    """Read a trusted-keys file (format in the module docstring).

    Raises:
        AuditError: missing or malformed file, a bad name, a value that is no Ed25519 PEM
            public key, or one key under two names.
    """
    import yaml

    p = Path(path)
    accepted = "accepted: a YAML mapping NAME: PEM public key text or the path of a .pub file"
    if not p.is_file():
        raise AuditError(f"trusted-keys file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        msg = " ".join(str(err).split())
        raise AuditError(f"trusted-keys file {str(p)!r} is not YAML ({msg}); {accepted}") from None
    if not isinstance(data, dict) or not data:
        raise AuditError(
            f"trusted-keys file {str(p)!r} holds {type(data).__name__}, not a non-empty "
            f"mapping; {accepted}"
        )
    by_id: dict[str, tuple[str, Ed25519PublicKey]] = {}
    for name, value in data.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise AuditError(
                f"trusted-keys file {str(p)!r}: key name {name!r} is not accepted; accepted: "
                "letters, digits, '_', '.', '@', '-' (at most 64)"
            )
        if not isinstance(value, str) or not value.strip():
            raise AuditError(
                f"trusted-keys file {str(p)!r}: entry {name!r} is not text; {accepted}"
            )
        try:
            if value.lstrip().startswith("-----BEGIN"):
                key = keys.load_public_key(value.strip().encode() + b"\n")
            else:
                kp = Path(value)
                key = keys.load_public_key(kp if kp.is_absolute() else p.parent / kp)
        except keys.KeyFileError as err:
            raise AuditError(f"trusted-keys file {str(p)!r}: entry {name!r}: {err}") from None
        kid = keys.key_id(key)
        if kid in by_id:
            raise AuditError(
                f"trusted-keys file {str(p)!r}: entries {by_id[kid][0]!r} and {name!r} are the "
                f"same key {kid}; list each key once"
            )
        by_id[kid] = (name, key)
    return TrustedKeys(by_id)


def pinned_keys(public_key: object) -> TrustedKeys:
    """The verifier's keys from a key object, a PEM path, or :class:`TrustedKeys`.

    Raises:
        AuditError: no key given (a key beside the log is never used), or an unreadable one.
    """
    if public_key is None:
        raise AuditError(
            "verifying needs a pinned public key: pass --public-key PEM or --trusted-keys "
            "FILE (a key file beside the log is never used)"
        )
    if isinstance(public_key, TrustedKeys):
        return public_key
    if isinstance(public_key, Ed25519PublicKey):
        return TrustedKeys.of(public_key)
    if isinstance(public_key, (str, Path)):
        try:
            return TrustedKeys.of(keys.load_public_key(public_key), name=Path(public_key).stem)
        except keys.KeyFileError as err:
            raise AuditError(f"pinned public key: {err}") from None
    raise AuditError(
        f"pinned key of type {type(public_key).__name__}; accepted: an Ed25519 public key, "
        "a PEM path or TrustedKeys"
    )
