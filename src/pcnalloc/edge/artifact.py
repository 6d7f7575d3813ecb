"""Signed edge artifacts: manifest layout, feature schema, and the verifying loader.

An artifact is a folder written by :func:`pcnalloc.export.compile.compile_student`::

    ARTIFACT/
      manifest.json     what the model reads and writes, versions, sha256 of every model file
      manifest.sig      Ed25519 signature (64 raw bytes) over the exact bytes of manifest.json
      model.onnx        fp32 student (ONNX, opset ≥ 17, dynamic batch axis)
      model.int8.onnx   optional dynamically quantised student (weights int8)
      network.npz       optional: the deployment's built network (arrays only, no pickle), so
                        an edge controller needs no grid-modelling package to rebuild it
      signer.pub        the signer's public key (PEM) — a convenience only: a verifier that
                        trusts the artifact's own key proves integrity, not origin

:func:`load_artifact` checks, in this order: the manifest and signature exist; the signature
verifies with the caller's public key; the manifest is well formed; every model file listed
exists, has the recorded size and sha256 (the network file too, when there is one); the
feature layout the manifest declares (``input.layout``, :mod:`pcnalloc.envs.layout`) is the
one this code builds for the artifact's catalog and action count. The bytes it hands back
are the bytes it hashed, so a file swapped after the check is never loaded. Nothing here
imports torch or pandapower.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.envs.layout import FeatureLayout, compact_layout, request_columns
from pcnalloc.envs.observation import compact_dim, layout_for
from pcnalloc.errors import PcnallocError
from pcnalloc.network.model import CommNetwork
from pcnalloc.traffic.catalog import Catalog

log = logging.getLogger(__name__)

FORMAT = "pcnalloc-edge-artifact/1"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
SIGNER_PUB = "signer.pub"
MODEL_FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
NETWORK_FILE = "network.npz"
INPUT_KEYS = ("compact", "state")
OUTPUT_NAME = "logits"

REQUIRED_FIELDS = (
    "format",
    "created_at",
    "input",
    "output",
    "n_actions",
    "feature_config",
    "feature_config_sha256",
    "env_config_sha256",
    "catalog",
    "versions",
    "models",
    "signature",
)


class ArtifactError(PcnallocError):
    """An artifact that is missing, malformed, tampered with, or signed by another key."""


class ArtifactMismatchError(ArtifactError):
    """A valid artifact built for another feature layout than the deployment's env config."""


class LayoutMismatchError(ArtifactMismatchError):
    """The artifact's declared compact-vector layout is not the one this code builds.

    Attributes:
        differences: what differs (first differing block or column, ...).
    """

    def __init__(self, where: str, differences: list[str]) -> None:
        super().__init__(
            f"{where}: the artifact's feature layout differs from this code's "
            f"({'; '.join(differences)}); recompile the student with this version"
        )
        self.differences = differences


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, compact) used for config hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


# ---------------------------------------------------------------------------- feature schema
def request_feature_names(catalog: Catalog) -> list[str]:
    """Names of the request block (declared in :mod:`pcnalloc.envs.layout`)."""
    return list(request_columns(catalog.names))


def compact_blocks(catalog: Catalog, cfg: EnvConfig) -> list[dict[str, Any]]:
    """Blocks of the compact vector in order: name, size, shape and feature names.

    Derived from the declared layout (:func:`pcnalloc.envs.observation.layout_for`).
    """
    out: list[dict[str, Any]] = []
    for b in layout_for(catalog, cfg).blocks:
        entry: dict[str, Any] = {"name": b.name, "size": b.size}
        if b.rows > 1:
            entry["shape"] = [b.rows, len(b.columns)]
        entry["features"] = list(b.columns)
        out.append(entry)
    return out


def check_layout(manifest: dict[str, Any], where: str = MANIFEST) -> FeatureLayout | None:
    """Compare the layout a compact-input manifest declares with the one this code builds
    for the manifest's own catalog and action count (None for a non-compact input).

    Raises:
        LayoutMismatchError: the layout is missing or differs (naming the first difference).
    """
    if manifest["input"]["name"] != "compact":
        return None
    declared = manifest["input"].get("layout")
    names, A = manifest.get("catalog"), manifest.get("n_actions")
    if not isinstance(names, list) or not isinstance(A, int):
        raise LayoutMismatchError(where, ["catalog or n_actions missing"])
    ours = compact_layout([str(n) for n in names], A)
    if declared is None:
        raise LayoutMismatchError(where, ["input.layout is missing (compiled before it existed)"])
    diff = ours.diff(declared)
    if manifest["input"]["dim"] != ours.size:
        diff.append(f"input.dim {manifest['input']['dim']} (code: {ours.size})")
    if diff:
        raise LayoutMismatchError(where, diff)
    return ours


def network_bytes(net: CommNetwork) -> bytes:
    """``net`` as the bytes of ``network.npz`` (the network cache's format: no pickle)."""
    from pcnalloc.network import store

    with tempfile.TemporaryDirectory(prefix="pcnalloc-net-") as tmp:
        return store.save(net, Path(tmp), "network").read_bytes()


def feature_config(cfg: EnvConfig, catalog: Catalog) -> dict[str, Any]:
    """The env settings that change what the compact vector means (not the topology).

    A student compiled on case30 serves any topology whose env agrees on these: action
    layout, history window, trust threshold, pre-emption and the emergency setup priorities
    (they decide which candidates may pre-empt), queueing model, a user rule file (it
    tightens the mask, hence the ``valid`` feature), and the catalog.
    """
    from pcnalloc.rules.engine import build_engine

    engine = build_engine(cfg.rules, catalog, trust_threshold=cfg.trust_threshold)
    pr = engine.priorities
    emergency_C = pr.emergency_C if cfg.emergency_priorities else pr.base_C
    out: dict[str, Any] = {
        "k_paths": cfg.k_paths,
        "grant_levels": cfg.grant_levels,
        "n_actions": cfg.n_actions,
        "history": cfg.history,
        "trust_threshold": cfg.trust_threshold,
        "preemption": cfg.preemption,
        "queue_q0_ms": cfg.network.queue_q0_ms,
        "util_cap": cfg.network.util_cap,
        "emergency_priority": [int(p) for p in emergency_C],
        "rules_sha256": engine.sha256 if cfg.rules is not None else None,
        "compact_dim": compact_dim(catalog, cfg),
        "catalog": catalog_fingerprint(catalog),
    }
    if cfg.route_pool > cfg.k_paths:  # state-chosen candidates mean other routes per slot
        out["candidate_pool"] = cfg.route_pool
    return out


def catalog_fingerprint(catalog: Catalog) -> dict[str, Any]:
    """Per-class values the features read (names, zone, bandwidth, bound, priority …)."""
    return {
        "names": list(catalog.names),
        "zone": catalog.zone_C.tolist(),
        "bandwidth_kbps": catalog.bandwidth_kbps_C.tolist(),
        "max_latency_ms": [float(x) for x in catalog.max_latency_ms_C],
        "priority": catalog.priority_C.tolist(),
        "value": [float(x) for x in catalog.value_C],
        "protected": [bool(x) for x in catalog.protected_C],
        "grant": [[float(g) for g in row] for row in catalog.grant_CL],
    }


def env_config_sha256(cfg: EnvConfig) -> str:
    """SHA-256 of the env config's canonical JSON (what the manifest records)."""
    return sha256_bytes(canonical_json(cfg.model_dump(mode="json")))


def feature_config_sha256(fc: dict[str, Any]) -> str:
    """SHA-256 of a feature config's canonical JSON."""
    return sha256_bytes(canonical_json(fc))


def check_feature_config(manifest: dict[str, Any], cfg: EnvConfig, catalog: Catalog) -> None:
    """Refuse an artifact whose compact layout differs from what ``cfg`` builds.

    Raises:
        ArtifactMismatchError: naming every differing field (artifact vs deployment).
    """
    ours = feature_config(cfg, catalog)
    theirs = manifest["feature_config"]
    bad = [k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k)]
    if bad:
        detail = "; ".join(
            f"{k}: artifact {_short(theirs.get(k))}, deployment {_short(ours.get(k))}" for k in bad
        )
        raise ArtifactMismatchError(
            f"artifact was compiled for another feature layout ({detail}); recompile the "
            "student for this env config or run the agent with the artifact's settings"
        )


def _short(v: Any) -> str:
    s = json.dumps(v)
    return s if len(s) <= 80 else s[:77] + "..."


# ---------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class LoadedArtifact:
    """A verified artifact.

    Attributes:
        path: the artifact folder.
        manifest: the parsed, signature-checked manifest.
        models: precision (``fp32``/``int8``) → verified ONNX bytes.
        key_id: fingerprint of the key that signed it.
        network_data: verified bytes of ``network.npz`` (None when the artifact has none).
    """

    path: Path
    manifest: dict[str, Any]
    models: dict[str, bytes]
    key_id: str
    network_data: bytes | None = None

    @property
    def input_name(self) -> str:
        return str(self.manifest["input"]["name"])

    @property
    def input_dim(self) -> int:
        return int(self.manifest["input"]["dim"])

    @property
    def n_actions(self) -> int:
        return int(self.manifest["n_actions"])

    def model(self, precision: str = "fp32") -> bytes:
        """Verified ONNX bytes of ``precision``.

        Raises:
            ArtifactError: the artifact has no such model.
        """
        if precision not in self.models:
            raise ArtifactError(
                f"artifact {str(self.path)!r} has no {precision!r} model; "
                f"accepted: {', '.join(sorted(self.models))}"
            )
        return self.models[precision]

    def sha256(self, precision: str = "fp32") -> str:
        return str(self.manifest["models"][precision]["sha256"])

    @property
    def has_network(self) -> bool:
        return self.network_data is not None

    def network(self) -> CommNetwork:
        """The deployment network stored in the artifact (from the verified bytes).

        Raises:
            ArtifactError: the artifact carries no network, or its file cannot be read.
        """
        if self.network_data is None:
            raise ArtifactError(
                f"artifact {str(self.path)!r} carries no {NETWORK_FILE}; pass the network "
                "(or compile with network=...)"
            )
        from pcnalloc.network import store

        try:
            return store.load(io.BytesIO(self.network_data))  # type: ignore[arg-type]
        except (OSError, ValueError, KeyError) as err:
            raise ArtifactError(f"{NETWORK_FILE}: cannot be read ({err})") from None


def resolve_public_key(
    artifact_dir: str | Path, public_key: Ed25519PublicKey | str | Path | bytes | None
) -> Ed25519PublicKey:
    """The verifier's key: an object, a PEM file/bytes, or None = ``signer.pub`` in the artifact.

    Raises:
        ArtifactError: no key given and the artifact has no ``signer.pub``, or a bad key file.
    """
    if isinstance(public_key, Ed25519PublicKey):
        return public_key
    if public_key is None:
        side = Path(artifact_dir) / SIGNER_PUB
        if not side.is_file():
            raise ArtifactError(
                f"{SIGNER_PUB}: missing in {str(artifact_dir)!r}; pass the signer's public key"
            )
        log.warning("verifying with the artifact's own %s: integrity only, not origin", SIGNER_PUB)
        public_key = side
    try:
        return keys.load_public_key(public_key)
    except keys.KeyFileError as err:
        raise ArtifactError(f"public key: {err}") from None


def load_artifact(
    artifact_dir: str | Path,
    public_key: Ed25519PublicKey | str | Path | bytes | None,
) -> LoadedArtifact:
    """Verify an artifact's signature and every model hash, and return its contents.

    Args:
        artifact_dir: the artifact folder.
        public_key: the signer's Ed25519 public key (object, PEM path or PEM bytes); None uses
            ``signer.pub`` inside the artifact (integrity only).

    Raises:
        ArtifactError: naming the file or field at fault — a missing file, a signature that
            does not verify (edited manifest or another key), a malformed manifest, or a
            model file whose size or sha256 differs from the manifest.
    """
    d = Path(artifact_dir)
    if not d.is_dir():
        raise ArtifactError(f"artifact folder {str(d)!r} does not exist")
    pub = resolve_public_key(d, public_key)
    kid = keys.key_id(pub)
    raw = _read(d, MANIFEST)
    sig = _read(d, SIGNATURE)
    if not keys.verify_signature(pub, raw, sig):
        named = _peek_key_id(raw)
        if named is not None and named != kid:
            raise ArtifactError(
                f"{SIGNATURE}: signed by key {named}, not by the given key {kid} (wrong key)"
            )
        raise ArtifactError(
            f"{SIGNATURE}: signature over {MANIFEST} does not verify with key {kid} "
            f"({MANIFEST} or {SIGNATURE} was changed after signing)"
        )
    manifest = _parse(raw)
    models: dict[str, bytes] = {}
    for precision, entry in manifest["models"].items():
        fname = _field(entry, "file", f"models.{precision}")
        if fname not in MODEL_FILES.values() or Path(fname).name != fname:
            raise ArtifactError(f"{MANIFEST}: models.{precision}.file {fname!r} is not accepted")
        data = _read(d, fname)
        want_size = _field(entry, "bytes", f"models.{precision}")
        if len(data) != want_size:
            raise ArtifactError(
                f"{fname}: {len(data)} bytes, the manifest records {want_size} (file changed)"
            )
        got = sha256_bytes(data)
        want = _field(entry, "sha256", f"models.{precision}")
        if got != want:
            raise ArtifactError(
                f"{fname}: sha256 {got[:16]}… differs from the manifest's {str(want)[:16]}… "
                "(model file tampered with)"
            )
        models[precision] = data
    if "fp32" not in models:
        raise ArtifactError(f"{MANIFEST}: models.fp32 is missing (every artifact has one)")
    check_layout(manifest)
    net = manifest.get("network")
    net_data = None
    if net is not None:
        fname = _field(net, "file", "network")
        if fname != NETWORK_FILE:
            raise ArtifactError(f"{MANIFEST}: network.file {fname!r} is not accepted")
        net_data = _verified(d, fname, net, "network")
    return LoadedArtifact(d, manifest, models, kid, net_data)


def _verified(d: Path, fname: str, entry: dict[str, Any], where: str) -> bytes:
    data = _read(d, fname)
    want_size = _field(entry, "bytes", where)
    if len(data) != want_size:
        raise ArtifactError(
            f"{fname}: {len(data)} bytes, the manifest records {want_size} (file changed)"
        )
    got = sha256_bytes(data)
    want = _field(entry, "sha256", where)
    if got != want:
        raise ArtifactError(
            f"{fname}: sha256 {got[:16]}… differs from the manifest's {str(want)[:16]}… "
            "(file tampered with)"
        )
    return data


def _read(d: Path, name: str) -> bytes:
    p = d / name
    if not p.is_file():
        raise ArtifactError(f"{name}: missing from artifact {str(d)!r}")
    return p.read_bytes()


def _peek_key_id(raw: bytes) -> str | None:
    try:
        return str(json.loads(raw)["signature"]["key_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _field(obj: Any, name: str, where: str) -> Any:
    if not isinstance(obj, dict) or name not in obj:
        raise ArtifactError(f"{MANIFEST}: field {where}.{name} is missing")
    return obj[name]


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        m = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"{MANIFEST}: not valid JSON ({err})") from None
    if not isinstance(m, dict):
        raise ArtifactError(f"{MANIFEST}: must hold a JSON object")
    if "format" in m and m["format"] != FORMAT:  # another format first: its fields differ
        raise ArtifactError(f"{MANIFEST}: format {m['format']!r} is not accepted; want {FORMAT}")
    missing = [f for f in REQUIRED_FIELDS if f not in m]
    if missing:
        raise ArtifactError(f"{MANIFEST}: fields {missing} are missing")
    name = _field(m["input"], "name", "input")
    if name not in INPUT_KEYS:
        raise ArtifactError(
            f"{MANIFEST}: input.name {name!r} is not accepted; accepted: {', '.join(INPUT_KEYS)}"
        )
    _field(m["input"], "dim", "input")
    if not isinstance(m["models"], dict) or not m["models"]:
        raise ArtifactError(f"{MANIFEST}: models must map a precision to a file entry")
    return m


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    """The exact bytes written to ``manifest.json`` (and signed)."""
    return (json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def publish_dir(out: Path, files: dict[str, bytes], *, overwrite: bool = False) -> None:
    """Write ``files`` into a temporary sibling folder, fsync, then rename it to ``out``.

    Readers see either no folder (or the previous one) or the complete new one.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    old: Path | None = None
    try:
        for fname, data in files.items():
            with open(tmp / fname, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        if out.exists():
            if not overwrite:
                raise ArtifactError(f"artifact folder {str(out)!r} appeared while it was built")
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not out.exists():
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(d: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = [
    "FORMAT",
    "MANIFEST",
    "MODEL_FILES",
    "NETWORK_FILE",
    "SIGNATURE",
    "SIGNER_PUB",
    "ArtifactError",
    "ArtifactMismatchError",
    "LayoutMismatchError",
    "LoadedArtifact",
    "check_feature_config",
    "check_layout",
    "compact_blocks",
    "env_config_sha256",
    "feature_config",
    "load_artifact",
    "manifest_bytes",
    "network_bytes",
    "publish_dir",
]
