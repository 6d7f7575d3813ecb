"""Signed access-student artifacts: layout, the verifying loader and the ONNX mode policy.

An access artifact is written by :func:`pcnalloc.twolayer.export.compile_access_student`
with the backbone artifact's machinery (:mod:`pcnalloc.edge.artifact`: canonical manifest
bytes, Ed25519 signature over them, atomic publication of the folder)::

    ARTIFACT/
      manifest.json   format, the per-device feature names (input layout), the two outputs
                      (PLC, 5G), the access config it was trained on, versions, parity
                      figures, sha256 and size of the model
      manifest.sig    Ed25519 signature (64 raw bytes) over the exact bytes of manifest.json
      model.onnx      the distilled student (fp32, opset ≥ 17, dynamic batch axis)
      signer.pub      the signer's public key (PEM), a convenience: it is never trusted here

Its format differs from the backbone artifact's (``pcnalloc-access-artifact/1``): the
backbone manifest describes the request/candidate compact vector of an ``EnvConfig``,
which the access decision does not have, so :func:`pcnalloc.edge.artifact.load_artifact`
refuses it and :func:`load_access_artifact` is its verifier here. It checks, in order: the
manifest and signature exist; the signature verifies with the caller's pinned public key
(required: no fallback to ``signer.pub``); the manifest is well formed and of this format;
the model file has the recorded size and sha256; the declared features are
:data:`pcnalloc.access.features.FEATURES` in order. The bytes handed to ONNX Runtime are the
bytes hashed. Nothing here imports torch.

Spec: ``edge@ARTIFACT::PUBLIC_KEY`` (the backbone's ``edge`` spec form) plays the artifact's
student through :class:`ArtifactModePolicy` wherever an access policy is taken.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.access.errors import AccessConfigError
from pcnalloc.access.features import FEATURES, N_FEATURES
from pcnalloc.access.registry import register_access_kind
from pcnalloc.edge import keys
from pcnalloc.edge.artifact import (
    MANIFEST,
    MODEL_FILES,
    OUTPUT_NAME,
    SIGNATURE,
    ArtifactError,
    ArtifactMismatchError,
    sha256_bytes,
)
from pcnalloc.twolayer.learned import LearnedModePolicy

ACCESS_FORMAT = "pcnalloc-access-artifact/1"
INPUT_NAME = "compact"
ACTIONS = ("plc", "5g")
MODEL_FILE = MODEL_FILES["fp32"]
REQUIRED_FIELDS = (
    "format",
    "created_at",
    "layer",
    "input",
    "output",
    "n_actions",
    "access_config",
    "versions",
    "models",
    "signature",
)


@dataclass(frozen=True)
class AccessArtifact:
    """A verified access artifact.

    Attributes:
        path: the artifact folder.
        manifest: the parsed, signature-checked manifest.
        model: the verified ONNX bytes.
        key_id: fingerprint of the key that signed it.
    """

    path: Path
    manifest: dict[str, Any]
    model: bytes
    key_id: str

    @property
    def sha256(self) -> str:
        return str(self.manifest["models"]["fp32"]["sha256"])


def _read(d: Path, name: str) -> bytes:
    p = d / name
    if not p.is_file():
        raise ArtifactError(f"{name}: missing from artifact {str(d)!r}")
    return p.read_bytes()


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        m = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({err})") from None
    if not isinstance(m, dict):
        raise ArtifactError(f"{MANIFEST}: must hold a JSON object")
    missing = [f for f in REQUIRED_FIELDS if f not in m]
    if missing:
        raise ArtifactError(f"{MANIFEST}: fields {missing} are missing")
    if m["format"] != ACCESS_FORMAT:
        raise ArtifactError(
            f"{MANIFEST}: format {m['format']!r} is not an access artifact; want {ACCESS_FORMAT}"
        )
    entry = m["models"].get("fp32") if isinstance(m["models"], dict) else None
    if not isinstance(entry, dict) or not {"file", "sha256", "bytes"} <= set(entry):
        raise ArtifactError(f"{MANIFEST}: models.fp32 needs file, sha256 and bytes")
    if entry["file"] != MODEL_FILE:
        raise ArtifactError(f"{MANIFEST}: models.fp32.file {entry['file']!r}; want {MODEL_FILE}")
    return m


def check_features(manifest: dict[str, Any]) -> None:
    """Refuse an artifact whose input is not this code's per-device feature row.

    Raises:
        ArtifactMismatchError: naming the first differing feature (or the width / outputs).
    """
    inp, out = manifest["input"], manifest["output"]
    names = inp.get("features") if isinstance(inp, dict) else None
    if not isinstance(names, list):
        raise ArtifactMismatchError(f"{MANIFEST}: input.features is missing")
    diff: list[str] = []
    if inp.get("name") != INPUT_NAME:
        diff.append(f"input.name {inp.get('name')!r} (code: {INPUT_NAME!r})")
    if inp.get("dim") != N_FEATURES or len(names) != N_FEATURES:
        diff.append(f"input.dim {inp.get('dim')} with {len(names)} names (code: {N_FEATURES})")
    for i, (a, b) in enumerate(zip(names, FEATURES, strict=False)):
        if a != b:
            diff.append(f"feature {i} is {a!r} (code: {b!r})")
            break
    if not isinstance(out, dict) or out.get("actions") != list(ACTIONS):
        got = out.get("actions") if isinstance(out, dict) else None
        diff.append(f"output.actions {got!r} (code: {list(ACTIONS)})")
    if diff:
        raise ArtifactMismatchError(
            f"{MANIFEST}: the artifact's access features differ from this code's "
            f"({'; '.join(diff)}); compile the student again with this version"
        )


def load_access_artifact(
    artifact_dir: str | Path, public_key: str | Path | bytes
) -> AccessArtifact:
    """Verify an access artifact with a pinned public key and return its contents.

    Args:
        artifact_dir: the artifact folder.
        public_key: the signer's Ed25519 public key (PEM path or bytes; ``pcnalloc keys new``
            writes it next to the private key). Required: the artifact's own ``signer.pub``
            would prove integrity only, never origin.

    Raises:
        ArtifactError: a missing folder or file, a signature that does not verify (another
            key, or an edited manifest), a malformed manifest, a model whose size or sha256
            differs from the manifest; :class:`ArtifactMismatchError` for other features.
    """
    d = Path(artifact_dir)
    if not d.is_dir():
        raise ArtifactError(f"artifact folder {str(d)!r} does not exist")
    try:
        pub = keys.load_public_key(public_key)
    except keys.KeyFileError as err:
        raise ArtifactError(f"public key: {err}") from None
    kid = keys.key_id(pub)
    raw, sig = _read(d, MANIFEST), _read(d, SIGNATURE)
    if not keys.verify_signature(pub, raw, sig):
        try:
            named = str(json.loads(raw)["signature"]["key_id"])
        except (ValueError, KeyError, TypeError):
            named = None
        if named is not None and named != kid:
            raise ArtifactError(
                f"{SIGNATURE}: signed by key {named}, not by the pinned key {kid} (wrong key)"
            )
        raise ArtifactError(
            f"{SIGNATURE}: signature over {MANIFEST} does not verify with key {kid} "
            f"({MANIFEST} or {SIGNATURE} was changed after signing)"
        )
    m = _parse(raw)
    entry = m["models"]["fp32"]
    data = _read(d, MODEL_FILE)
    if len(data) != entry["bytes"]:
        raise ArtifactError(
            f"{MODEL_FILE}: {len(data)} bytes, the manifest records {entry['bytes']} (file changed)"
        )
    got = sha256_bytes(data)
    if got != entry["sha256"]:
        raise ArtifactError(
            f"{MODEL_FILE}: sha256 {got[:16]}… differs from the manifest's "
            f"{str(entry['sha256'])[:16]}… (model file tampered with)"
        )
    check_features(m)
    return AccessArtifact(d, m, data, kid)


class ArtifactModePolicy(LearnedModePolicy):
    """The access student of a verified artifact, run by ONNX Runtime (no torch).

    The guard and the slot allocator are :class:`LearnedModePolicy`'s, so on the same seed
    it takes the torch student's decisions wherever the two agree on the argmax and on the
    order of the score gaps (float32 parity of ~1e-7).
    """

    def __init__(self, artifact: AccessArtifact, *, threads: int = 1) -> None:
        from pcnalloc.edge.agent import make_session

        super().__init__(None, "student-onnx")
        self.artifact = artifact
        self.session = make_session(artifact.model, threads=threads)

    def scores(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, np.float32)})[0]


def make_artifact_policy(spec: str) -> ArtifactModePolicy:
    """``edge@ARTIFACT::PUBLIC_KEY`` → a policy playing the verified artifact.

    Raises:
        AccessConfigError: a spec without both parts.
        ArtifactError: an artifact that does not verify with the key.
    """
    _, _, arg = spec.partition("@")
    folder, sep, pub = arg.partition("::")
    if not folder or not sep or not pub:
        raise AccessConfigError(
            f"bad access artifact spec {spec!r}; accepted: edge@ARTIFACT::PUBLIC_KEY (the "
            "signer's public key is required)"
        )
    return ArtifactModePolicy(load_access_artifact(folder, Path(pub)))


register_access_kind("edge", make_artifact_policy)

__all__ = [
    "ACCESS_FORMAT",
    "ACTIONS",
    "AccessArtifact",
    "ArtifactModePolicy",
    "check_features",
    "load_access_artifact",
    "make_artifact_policy",
]
