"""Ed25519 key helpers shared by the audit log and artifact signing (``cryptography``).

Private keys are PEM PKCS#8 files created with mode 0600 and never overwritten; public keys
are PEM SubjectPublicKeyInfo files. A key id is the first 16 hex digits of the SHA-256 of the
raw 32-byte public key.

A private key may be encrypted with a passphrase (PKCS#8 with ``cryptography``'s
``BestAvailableEncryption``: scrypt + AES-256-CBC in the releases pinned here). Loading an
encrypted key reads the passphrase from ``PCNALLOC_KEY_PASSPHRASE_FILE`` (a file whose first
line is the passphrase), else ``PCNALLOC_KEY_PASSPHRASE``, else asks on the terminal when
there is one; a wrong or missing passphrase is a :class:`KeyFileError` (one line, exit 2).
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import os
import re
import sys
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pcnalloc.errors import PcnallocError

log = logging.getLogger(__name__)

PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
"""Accepted key file stems: no path separators, no leading dot, so a name cannot leave --out."""
PASSPHRASE_ENV = "PCNALLOC_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "PCNALLOC_KEY_PASSPHRASE_FILE"
_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


class KeyFileError(PcnallocError):
    """A missing, unreadable or wrong-type key file."""


def generate_keypair() -> tuple[Ed25519PrivateKey, Ed25519PublicKey]:
    """A fresh Ed25519 key pair (from the OS's cryptographic random source)."""
    priv = Ed25519PrivateKey.generate()
    return priv, priv.public_key()


def public_bytes(pub: Ed25519PublicKey) -> bytes:
    """The raw 32-byte public key."""
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key (16 hex digits)."""
    return hashlib.sha256(public_bytes(pub)).hexdigest()[:16]


def save_keypair(
    out_dir: str | Path, name: str = "pcnalloc", *, passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Generate a key pair and write ``name.key`` (mode 0600) and ``name.pub`` in ``out_dir``.

    Args:
        out_dir: the key folder (created if missing).
        name: the file stem.
        passphrase: encrypt the private key with it (``BestAvailableEncryption``); None =
            unencrypted (protected by the file mode only).

    Raises:
        KeyFileError: if either file exists already (keys are never overwritten), or the
            name is not a plain file stem (it could escape ``out_dir``).
    """
    if not re.fullmatch(NAME_PATTERN, name) or ".." in name:
        raise KeyFileError(
            f"key name {name!r} is not accepted; accepted: letters, digits, '_', '.', '-' "
            "(starting with a letter or digit, no '..', at most 64 characters)"
        )
    from pcnalloc.fileio import created_on_failure_removed, write_atomic

    d = Path(out_dir)
    priv_path, pub_path = d / f"{name}{PRIVATE_SUFFIX}", d / f"{name}{PUBLIC_SUFFIX}"
    for p in (priv_path, pub_path):
        if p.exists():
            raise KeyFileError(f"key file {str(p)!r} exists; choose another --out or name")
    if passphrase is not None and not passphrase:
        raise KeyFileError("the passphrase is empty; give a non-empty one or none")
    priv, pub = generate_keypair()
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if passphrase is None
        else serialization.BestAvailableEncryption(passphrase)
    )
    pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    # both files or neither: a failure (disk full, Ctrl-C) removes the private key written
    # first and the folder made for it
    with created_on_failure_removed(priv_path):
        fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(priv_path, 0o600)  # the umask may have narrowed it further, never widened
        write_atomic(pub_path, public_pem(pub))
    return priv_path, pub_path


def ensure_keypair(key_dir: str | Path, name: str = "pcnalloc") -> tuple[Path, Path]:
    """The key pair in ``key_dir``: reused when present, created once when absent.

    A rerun (e.g. ``pcnalloc run --force``) keeps the key, so public keys shipped to
    verifiers keep accepting new artifacts.

    Raises:
        KeyFileError: only one of ``name.key`` and ``name.pub`` exists (a half key pair).
    """
    d = Path(key_dir)
    priv_path, pub_path = d / f"{name}{PRIVATE_SUFFIX}", d / f"{name}{PUBLIC_SUFFIX}"
    if priv_path.is_file() and pub_path.is_file():
        return priv_path, pub_path
    if priv_path.exists() or pub_path.exists():
        raise KeyFileError(
            f"key folder {str(d)!r} holds half of key pair {name!r}; restore the missing "
            "file or choose another folder"
        )
    return save_keypair(d, name)


def public_pem(pub: Ed25519PublicKey) -> bytes:
    """The public key as PEM SubjectPublicKeyInfo bytes."""
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def read_passphrase_file(path: str | Path) -> bytes:
    """The passphrase in a file: its first line, without the line break.

    Raises:
        KeyFileError: missing file or an empty first line.
    """
    p = Path(path)
    if not p.is_file():
        raise KeyFileError(f"passphrase file {str(p)!r} does not exist")
    if os.name == "posix" and p.stat().st_mode & 0o077:
        log.warning("passphrase file %s is readable by group or others; chmod 600 it", p)
    lines = p.read_bytes().splitlines()
    if not lines or not lines[0]:
        raise KeyFileError(f"passphrase file {str(p)!r} is empty; its first line is the passphrase")
    return lines[0]


def passphrase_from_env(what: str) -> bytes | None:
    """The passphrase from ``PCNALLOC_KEY_PASSPHRASE_FILE`` or ``PCNALLOC_KEY_PASSPHRASE``,
    else asked on the terminal (``getpass``, which writes to the terminal, not stdout), else
    None when there is no terminal."""
    if os.environ.get(PASSPHRASE_FILE_ENV):
        return read_passphrase_file(os.environ[PASSPHRASE_FILE_ENV])
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode()
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"passphrase for {what}: ").encode() or None
    return None


def load_private_key(path: str | Path, passphrase: bytes | None = None) -> Ed25519PrivateKey:
    """Read a PEM Ed25519 private key, decrypting it if it is passphrase-encrypted.

    Args:
        path: the PEM file.
        passphrase: for an encrypted key; None = :func:`passphrase_from_env` (files,
            environment, terminal). Ignored for an unencrypted key.

    Raises:
        KeyFileError: missing file, not PEM, not an Ed25519 key, or an encrypted key whose
            passphrase is missing or wrong.
    """
    data = _read(path)
    if os.name == "posix" and Path(path).stat().st_mode & 0o077:
        log.warning("private key %s is readable by group or others; chmod 600 it", path)
    password = None
    if _ENCRYPTED_PEM in data:
        password = passphrase if passphrase is not None else passphrase_from_env(str(path))
        if password is None:
            raise KeyFileError(
                f"private key {str(path)!r} is passphrase-encrypted; set {PASSPHRASE_FILE_ENV} "
                f"(a file holding the passphrase) or {PASSPHRASE_ENV}, or run on a terminal"
            )
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as err:
        if password is not None:
            raise KeyFileError(
                f"wrong passphrase for private key {str(path)!r} (or the file is damaged)"
            ) from None
        raise KeyFileError(f"{str(path)!r} is not a PEM private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{str(path)!r} holds a {type(key).__name__}; accepted: Ed25519")
    return key


def load_public_key(path_or_pem: str | Path | bytes) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key from a file (or PEM bytes)."""
    data = path_or_pem if isinstance(path_or_pem, bytes) else _read(path_or_pem)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise KeyFileError(f"not a PEM public key ({path_or_pem!r:.60}): {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"public key is a {type(key).__name__}; accepted: Ed25519")
    return key


def sign(priv: Ed25519PrivateKey, data: bytes) -> bytes:
    """Ed25519 signature (64 bytes) over ``data``."""
    return priv.sign(data)


def verify_signature(pub: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    """True iff ``signature`` is ``pub``'s signature over ``data``."""
    try:
        pub.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def _read(path: str | Path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise KeyFileError(f"key file {str(p)!r} does not exist")
    return p.read_bytes()
