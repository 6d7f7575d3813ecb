"""``pcnalloc access compile``: the distilled access student as a signed ONNX artifact.

Steps, with the backbone compiler's own pieces (:mod:`pcnalloc.export.compile`):
:func:`~pcnalloc.export.compile.export_onnx` (opset 17, dynamic batch, ``onnx.checker``),
then two gates on the access library's ``compact`` rows (every row, or a seeded sample of
``rows``): max |ONNX − torch logit| ≤ ``parity_tol`` × max(1, max |logit|) (the backbone's
:func:`~pcnalloc.export.compile.parity`), and 100 % argmax agreement on every row whose
torch logit margin exceeds twice that difference (rows nearer a tie cannot be told apart in
float32 and are counted, not gated). The manifest (layout in :mod:`.artifact`) is signed
with Ed25519 (:mod:`pcnalloc.edge.keys`) over the bytes of
:func:`pcnalloc.edge.artifact.manifest_bytes`, and the folder is published whole through
:func:`pcnalloc.fileio.staged_dir`.

This module imports torch; the artifact's policy (:mod:`.artifact`) does not.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pcnalloc.access.errors import AccessConfigError
from pcnalloc.access.features import FEATURES, N_FEATURES
from pcnalloc.twolayer.artifact import ACCESS_FORMAT, ACTIONS, INPUT_NAME, MODEL_FILE
from pcnalloc.twolayer.compile_config import ACCESS_COMPILE_DEFAULTS

DEFAULT_PARITY_TOL = ACCESS_COMPILE_DEFAULTS.parity_tol
DEFAULT_ROWS = ACCESS_COMPILE_DEFAULTS.rows


def library_rows(
    library: str | Path, *, max_rows: int = DEFAULT_ROWS, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """The ``compact`` rows (N, F) float32 of an access library (all, or a seeded sample of
    ``max_rows``), its access config and its metadata.

    Raises:
        LibraryError: no library there.
        AccessConfigError: an empty library, or one that is not an access library.
    """
    from pcnalloc.library.reader import LibraryReader

    reader = LibraryReader(library)  # LibraryError (one line, exit 2) when there is none
    meta = reader.metadata
    if meta.get("extra", {}).get("layer") != "access" or reader.spec.compact_dim != N_FEATURES:
        raise AccessConfigError(
            f"library {str(library)!r} is not an access library (pcnalloc access train writes "
            "one under FOLDER/library)"
        )
    n = reader.num_rows
    if n == 0:
        raise AccessConfigError(f"library {str(library)!r} has no rows")
    x = np.asarray(reader.read_all()[INPUT_NAME], dtype=np.float32).reshape(n, N_FEATURES)
    if n > max_rows:
        x = x[np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))]
    return np.ascontiguousarray(x), dict(meta.get("env_config", {})), {**meta, "num_rows": n}


def compile_access_student(
    student: str | Path,
    library: str | Path,
    *,
    private_key: str | Path,
    out_dir: str | Path,
    rows: int = DEFAULT_ROWS,
    parity_tol: float = DEFAULT_PARITY_TOL,
    overwrite: bool = False,
    onnx_hook: Any = None,
) -> dict[str, Any]:
    """Export, gate, sign and publish the access student at ``student``.

    Args:
        student: ``student.pt`` or its folder (``pcnalloc access train``'s ``student/``).
        library: the access library whose rows gate the export.
        private_key: Ed25519 private key (PEM, ``pcnalloc keys new``).
        out_dir: artifact folder (must not exist unless ``overwrite``).
        rows: at most this many library rows (seeded sample) for the gates.
        parity_tol: accepted max |Δlogit| relative to max(1, max |logit|).
        overwrite: replace an existing folder once the new one is whole.
        onnx_hook: transforms the ONNX bytes before the gates (tests plant faults).

    Returns:
        The signed manifest plus ``path`` and ``export_s``.

    Raises:
        OutputPathError: ``out_dir`` unusable (checked before any work).
        AccessConfigError: a bad student or library, or a failed gate.
        KeyFileError: an unreadable key.
    """
    import onnx
    import onnxruntime as ort
    import torch

    import pcnalloc
    from pcnalloc.edge import keys
    from pcnalloc.edge.artifact import (
        MANIFEST,
        OUTPUT_NAME,
        SIGNATURE,
        SIGNER_PUB,
        manifest_bytes,
        sha256_bytes,
    )
    from pcnalloc.export.compile import MIN_OPSET, export_onnx, onnx_logits, torch_logits
    from pcnalloc.fileio import check_output, staged_dir
    from pcnalloc.twolayer.learned import STUDENT_DIR, _student_net

    out = check_output(out_dir, kind="dir", overwrite=overwrite)
    priv = keys.load_private_key(private_key)
    sp = Path(student)
    if sp.is_dir() and (sp / STUDENT_DIR).is_dir():
        sp = sp / STUDENT_DIR
    module = _student_net(sp).eval()
    x, access_cfg, meta = library_rows(library, max_rows=rows)
    t0 = time.perf_counter()
    model = export_onnx(module, INPUT_NAME, N_FEATURES, opset=MIN_OPSET)
    if onnx_hook is not None:
        model = onnx_hook(model)
    export_s = time.perf_counter() - t0
    z_t = torch_logits(module, x)
    z_o = onnx_logits(model, INPUT_NAME, x)
    diff = float(np.max(np.abs(z_o - z_t)))
    scale = max(1.0, float(np.max(np.abs(z_t))))
    if not diff <= parity_tol * scale:
        raise AccessConfigError(
            f"ONNX/torch parity failed: max |Δlogit| = {diff:.3g} on {len(x)} library rows "
            f"(logit scale {scale:.3g}); accepted: ≤ {parity_tol:g} × max(1, max |logit|)"
        )
    same = z_o.argmax(axis=1) == z_t.argmax(axis=1)
    clear = np.abs(z_t[:, 1] - z_t[:, 0]) > 2 * diff
    if not same[clear].all():
        raise AccessConfigError(
            f"ONNX/torch argmax differs on {int((~same & clear).sum())} of {int(clear.sum())} "
            "library rows with a clear margin; accepted: none"
        )
    ck_path = sp / "student.pt" if sp.is_dir() else sp
    params = int(sum(p.numel() for p in module.parameters()))
    manifest: dict[str, Any] = {
        "format": ACCESS_FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "layer": "access",
        "input": {
            "name": INPUT_NAME,
            "dim": N_FEATURES,
            "dtype": "float32",
            "shape": ["devices", N_FEATURES],
            "features": list(FEATURES),
            "row": "one device of pcnalloc.access.features.device_features",
        },
        "output": {
            "name": OUTPUT_NAME,
            "dim": len(ACTIONS),
            "dtype": "float32",
            "shape": ["devices", len(ACTIONS)],
            "actions": list(ACTIONS),
        },
        "n_actions": len(ACTIONS),
        "access_config": access_cfg,
        "versions": {
            "pcnalloc": pcnalloc.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "opset": MIN_OPSET,
        },
        "student": {
            "class": type(module).__name__,
            "param_count": params,
            "param_bytes": int(getattr(module, "param_bytes", params * 4)),
        },
        "validation": {
            "rows": len(x),
            "library_rows": int(meta["num_rows"]),
            "parity_max_abs": diff,
            "parity_logit_scale": scale,
            "parity_tol": parity_tol,
            "argmax_agreement": float(same.mean()),
            "argmax_agreement_clear_margin": float(same[clear].mean()) if clear.any() else 1.0,
            "near_tie_rows": int((~clear).sum()),
        },
        "models": {
            "fp32": {"file": MODEL_FILE, "sha256": sha256_bytes(model), "bytes": len(model)}
        },
        "source": {
            "student": str(ck_path),
            "student_sha256": sha256_bytes(ck_path.read_bytes()),
            "library": str(library),
            "teacher_sha256": meta.get("teacher_sha256"),
        },
        "signature": {"algorithm": "Ed25519", "key_id": keys.key_id(priv.public_key())},
    }
    raw = manifest_bytes(manifest)
    files = {
        MODEL_FILE: model,
        MANIFEST: raw,
        SIGNATURE: keys.sign(priv, raw),
        SIGNER_PUB: keys.public_pem(priv.public_key()),
    }
    with staged_dir(out, overwrite=overwrite) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
    return {**manifest, "path": str(out), "export_s": export_s}


__all__ = ["DEFAULT_PARITY_TOL", "DEFAULT_ROWS", "compile_access_student", "library_rows"]
