"""Compile a distilled student into a signed edge artifact (ONNX fp32, optional int8).

Steps (DESIGN §7): export the torch student to ONNX (opset ≥ 17, dynamic batch axis, input
``compact`` or ``state``, output ``logits``); ``onnx.checker``; numeric parity with torch
(max |Δlogit| ≤ ``parity_tol`` on the sample rows); optionally quantise to int8 with
``onnxruntime.quantization`` (:mod:`pcnalloc.export.quant`) and keep the result only if it
passes the gates of :mod:`pcnalloc.export.gate`: decision-relevant agreement with fp32 on
≥ ``min_agreement`` of the sample rows (judged row by row, ties of the teacher's values
counted, masked picks never), then, when asked, ≥ ``closed_loop.min_ratio`` of fp32's
closed-loop value on seeded episodes; write ``manifest.json`` (layout
in :mod:`pcnalloc.edge.artifact`), sign it with Ed25519, and publish the whole folder
atomically (built in a temporary sibling folder, then renamed).

This module imports torch; the edge runtime (:mod:`pcnalloc.edge.agent`) never imports it.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import onnxruntime.capi.onnxruntime_pybind11_state as _ort_state
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import pcnalloc
from pcnalloc.config import EnvConfig
from pcnalloc.edge import keys
from pcnalloc.edge.agent import make_session
from pcnalloc.edge.artifact import (
    FORMAT,
    INPUT_KEYS,
    MANIFEST,
    MODEL_FILES,
    NETWORK_FILE,
    OUTPUT_NAME,
    SIGNATURE,
    SIGNER_PUB,
    compact_blocks,
    env_config_sha256,
    feature_config,
    feature_config_sha256,
    manifest_bytes,
    network_bytes,
    publish_dir,
    sha256_bytes,
)
from pcnalloc.envs.observation import layout_for
from pcnalloc.errors import PcnallocError
from pcnalloc.export.config import COMPILE_DEFAULTS, CompileConfig
from pcnalloc.export.gate import (
    DEFAULT_TIE_TOL_Q,
    Agreement,
    ClosedLoop,
    ClosedLoopSpec,
    closed_loop_check,
    decision_agreement,
    rowwise_logits,
)
from pcnalloc.export.quant import DEFAULT_SETTINGS, QuantSettings, quantize_int8
from pcnalloc.fileio import write_atomic
from pcnalloc.traffic.catalog import Catalog, load_catalog

log = logging.getLogger(__name__)
_ORT_ERRORS = (_ort_state.Fail, _ort_state.InvalidGraph, _ort_state.InvalidArgument)

MIN_OPSET = 17
DEFAULT_PARITY_TOL = 1e-5
DEFAULT_MIN_AGREEMENT = COMPILE_DEFAULTS.min_agreement


class CompileError(PcnallocError):
    """A student that cannot be exported faithfully (bad shape, parity failure, bad opset)."""


class QuantizationRejected(CompileError):
    """The int8 model disagrees with fp32 on too many sample rows.

    Attributes:
        agreement: decision-relevant agreement (see :mod:`pcnalloc.export.gate`).
        threshold: the fraction required.
        rows: sample rows compared.
        raw: raw argmax agreement (None when not measured).
        details: what the gates measured (JSON-ready), recorded in the fp32 manifest.
    """

    def __init__(
        self,
        agreement: float,
        threshold: float,
        rows: int,
        *,
        raw: float | None = None,
        details: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        raw_txt = f" (raw argmax {raw:.4%})" if raw is not None else ""
        super().__init__(
            message
            or f"int8 model rejected: decision-relevant agreement with fp32 is {agreement:.4%}"
            f"{raw_txt} on {rows} sample rows judged row by row; accepted: ≥ {threshold:.2%} "
            "(ship fp32, or quantise a model with larger logit margins)"
        )
        self.agreement, self.threshold, self.rows, self.raw = agreement, threshold, rows, raw
        self.details = details or {}


class ClosedLoopRejected(QuantizationRejected):
    """The int8 model agrees on rows but loses too much closed-loop value against fp32."""

    def __init__(self, agreement: Agreement, closed: ClosedLoop, details: dict[str, Any]) -> None:
        super().__init__(
            agreement.decision,
            closed.min_ratio,
            agreement.rows,
            raw=agreement.raw,
            details=details,
            message=f"int8 model rejected: closed-loop weighted value {closed.int8_value:.4f} "
            f"is {closed.ratio:.4%} of fp32's {closed.fp32_value:.4f} on {len(closed.seeds)} "
            f"seeded episodes of {closed.env} ({closed.requests} decisions each); accepted: "
            f"≥ {closed.min_ratio:.2%} (ship fp32)",
        )
        self.closed_loop = closed


@dataclass(frozen=True)
class CompileResult:
    """What :func:`compile_student` produced.

    Attributes:
        path: the published artifact folder.
        manifest: the signed manifest.
        parity_max_abs: max |ONNX − torch| over sample rows and actions (fp32).
        int8_agreement: int8/fp32 raw argmax agreement, row by row (None without ``int8``).
        model_bytes: precision → file size in bytes.
        int8_decision_agreement: decision-relevant agreement (None without ``int8``).
        closed_loop: the closed-loop check (None when not run).
        int8_refused: what the gates measured when they refused int8 (fp32 shipped).
    """

    path: Path
    manifest: dict[str, Any]
    parity_max_abs: float
    int8_agreement: float | None
    model_bytes: dict[str, int]
    int8_decision_agreement: float | None = None
    closed_loop: ClosedLoop | None = None
    int8_refused: dict[str, Any] | None = None


# ---------------------------------------------------------------------------- steps
def export_onnx(
    module: torch.nn.Module, input_name: str, dim: int, *, opset: int = MIN_OPSET
) -> bytes:
    """Export ``module`` (B, dim) float32 → (B, A) logits to ONNX bytes and run the checker.

    Raises:
        CompileError: opset below 17, unknown input name, or a model the checker refuses.
    """
    if opset < MIN_OPSET:
        raise CompileError(f"opset {opset} is too old; accepted: ≥ {MIN_OPSET}")
    if input_name not in INPUT_KEYS:
        raise CompileError(f"input name {input_name!r}; accepted: {', '.join(INPUT_KEYS)}")
    module = module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(
            module,
            (torch.zeros(1, dim, dtype=torch.float32),),
            buf,  # type: ignore[arg-type]  # the TorchScript exporter writes to streams
            dynamo=False,
            input_names=[input_name],
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamic_axes={input_name: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    data = buf.getvalue()
    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise CompileError(f"onnx.checker refused the exported model: {err}") from None
    return data


def onnx_logits(model: bytes, input_name: str, rows_ND: np.ndarray) -> np.ndarray:
    """Logits (N, A) float32 of an ONNX model on ``rows_ND`` (one thread, whole batch)."""
    sess = make_session(model)
    return sess.run([OUTPUT_NAME], {input_name: np.ascontiguousarray(rows_ND, np.float32)})[0]


@torch.no_grad()
def torch_logits(module: torch.nn.Module, rows_ND: np.ndarray) -> np.ndarray:
    """Logits (N, A) float32 of the torch student."""
    x = torch.from_numpy(np.ascontiguousarray(rows_ND, np.float32))
    return module.eval()(x).numpy()


def parity_max_abs(
    model: bytes, module: torch.nn.Module, input_name: str, rows_ND: np.ndarray
) -> float:
    """The largest |ONNX logits − torch logits| over every row and action."""
    return parity(model, module, input_name, rows_ND)[0]


def parity(
    model: bytes, module: torch.nn.Module, input_name: str, rows_ND: np.ndarray
) -> tuple[float, float]:
    """(max |Δlogit|, logit scale max(1, max |torch logit|)) over every row and action.

    The gate compares max |Δ| / scale with the tolerance: for logits within ±1 that is the
    absolute difference; for a sharply distilled student whose logits reach tens, float32
    summation order alone moves the last bits, so the error is judged relative to them.
    """
    z = torch_logits(module, rows_ND)
    diff = float(np.max(np.abs(onnx_logits(model, input_name, rows_ND) - z)))
    return diff, max(1.0, float(np.max(np.abs(z))))


def argmax_agreement(fp32: bytes, int8: bytes, input_name: str, rows_ND: np.ndarray) -> float:
    """Fraction of rows where the two models' raw argmax actions agree (``int8`` run row by
    row, as deployed: see :mod:`pcnalloc.export.gate`)."""
    a = onnx_logits(fp32, input_name, rows_ND).argmax(axis=1)
    b = rowwise_logits(int8, input_name, rows_ND).argmax(axis=1)
    return float(np.mean(a == b))


def int8_gate(
    fp32: bytes,
    int8: bytes,
    input_name: str,
    rows_ND: np.ndarray,
    *,
    env_config: EnvConfig,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    decisions: tuple[np.ndarray, np.ndarray] | None = None,
    tie_tol_q: float = DEFAULT_TIE_TOL_Q,
    tie_tol_logit: float = 0.0,
    closed_loop: ClosedLoopSpec | None = None,
) -> tuple[Agreement, ClosedLoop | None]:
    """Both int8 gates of :mod:`pcnalloc.export.gate`; returns what they measured.

    The closed-loop check runs only when ``closed_loop`` is given and the input is
    ``compact`` (the env's observation; a ``state`` student needs the teacher's encoder).

    Raises:
        QuantizationRejected: decision-relevant agreement below ``min_agreement``.
        ClosedLoopRejected: closed-loop value ratio below ``closed_loop.min_ratio``.
    """
    q_NA, mask_NA = decisions if decisions is not None else (None, None)
    try:
        z8 = rowwise_logits(int8, input_name, rows_ND)
    except _ORT_ERRORS as err:  # a broken quantised graph is a refused one, not a crash
        msg = " ".join(str(err).split())
        raise QuantizationRejected(
            0.0,
            min_agreement,
            len(rows_ND),
            message=f"int8 model rejected: onnxruntime cannot run it ({msg}); ship fp32",
        ) from None
    agree = decision_agreement(
        onnx_logits(fp32, input_name, rows_ND),
        z8,
        q_values_NA=q_NA,
        action_mask_NA=mask_NA,
        tie_tol_q=tie_tol_q,
        tie_tol_logit=tie_tol_logit,
    )
    details: dict[str, Any] = {"agreement": agree.to_json(), "min_agreement": min_agreement}
    if agree.decision < min_agreement:
        raise QuantizationRejected(
            agree.decision, min_agreement, agree.rows, raw=agree.raw, details=details
        )
    closed = None
    if closed_loop is not None and input_name == "compact":
        closed = closed_loop_check(fp32, int8, env_config, closed_loop, input_name=input_name)
        details["closed_loop"] = closed.to_json()
        if not closed.passed:
            raise ClosedLoopRejected(agree, closed, details)
    return agree, closed


# ---------------------------------------------------------------------------- compile
def compile_student(
    module: torch.nn.Module,
    rows_ND: np.ndarray,
    *,
    env_config: EnvConfig,
    private_key: Ed25519PrivateKey | str | Path,
    out_dir: str | Path,
    catalog: Catalog | None = None,
    input_name: str | None = None,
    int8: bool = False,
    opset: int = MIN_OPSET,
    parity_tol: float = DEFAULT_PARITY_TOL,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    int8_hook: Callable[[bytes], bytes] | None = None,
    overwrite: bool = False,
    source: dict[str, Any] | None = None,
    network: Any = None,
    layout_hook: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    quant: QuantSettings = DEFAULT_SETTINGS,
    decisions: tuple[np.ndarray, np.ndarray] | None = None,
    library: str | Path | None = None,
    tie_tol_q: float = DEFAULT_TIE_TOL_Q,
    tie_tol_logit: float = 0.0,
    closed_loop: ClosedLoopSpec | None = None,
    int8_refused: dict[str, Any] | None = None,
) -> CompileResult:
    """Export, check, optionally quantise, sign and publish a student artifact.

    Args:
        module: the student, (B, D) float32 → (B, A) logits; its ``input_key`` attribute
            (``compact``|``state``) names the input unless ``input_name`` is given.
        rows_ND: sample rows (N, D) float32 for the parity and int8 gates (library rows).
        env_config: the env the student was trained for (fixes A, D and the feature layout).
        private_key: Ed25519 signing key (object or PEM path, see ``pcnalloc keys new``).
        out_dir: the artifact folder to publish (must not exist unless ``overwrite``).
        catalog: the service catalog (default: the one ``env_config`` names).
        input_name: override of the input name.
        int8: also produce ``model.int8.onnx`` (refused unless it agrees enough).
        opset: ONNX opset (≥ 17).
        parity_tol: maximum accepted |ONNX − torch| logit difference, relative to
            max(1, max |logit|) (see :func:`parity`).
        min_agreement: minimum int8/fp32 decision-relevant agreement (row by row).
        int8_hook: transforms the quantised bytes before the gate (tests inject faults).
        overwrite: replace an existing artifact folder.
        source: provenance recorded in the manifest (checkpoint, library, sha256s).
        network: a :class:`~pcnalloc.network.model.CommNetwork` to ship in the artifact
            (``network.npz``, hashed and signed like the models), so the edge rebuilds it
            without pandapower.
        layout_hook: transforms the declared layout before signing (tests plant faults).
        quant: how the int8 model is made (:class:`~pcnalloc.export.quant.QuantSettings`).
        decisions: the teacher's Q-values and action masks (N, A) of ``rows_ND`` for the
            decision-relevant gate (None: read them from ``library`` when given, else every
            action counts as valid and only the logit tie applies).
        library: the library ``rows_ND`` were sampled from by :func:`library_rows` (same
            seed); read only when the int8 gate needs ``decisions``.
        tie_tol_q: teacher-Q tie tolerance of the gate (teacher Q units).
        tie_tol_logit: fp32-logit tie tolerance of the gate (logit units).
        closed_loop: episodes and value ratio of the closed-loop check (None: not run).
        int8_refused: what the int8 gates measured when they refused (recorded in the
            manifest of the fp32 artifact :func:`compile_with_fallback` ships instead).

    Raises:
        CompileError: shape mismatch or parity above ``parity_tol``.
        QuantizationRejected: int8 agreement below ``min_agreement``, or
            :class:`ClosedLoopRejected` (nothing is written).
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise CompileError(f"artifact folder {str(out)!r} exists; pass overwrite to replace it")
    if isinstance(private_key, (str, Path)):
        private_key = keys.load_private_key(private_key)
    catalog = catalog or load_catalog(
        env_config.traffic.catalog, max_levels=env_config.grant_levels
    )
    name = input_name or str(getattr(module, "input_key", "compact"))
    rows = np.ascontiguousarray(rows_ND, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise CompileError(f"sample rows must be a non-empty (N, D) array, got {rows.shape}")
    D = rows.shape[1]
    layout: dict[str, Any] | None = None
    if name == "compact":
        blocks = compact_blocks(catalog, env_config)
        layout = layout_for(catalog, env_config).to_dict()
        if layout_hook is not None:
            layout = layout_hook(layout)
        want = sum(b["size"] for b in blocks)
        if want != D:
            raise CompileError(
                f"sample rows have D={D}; the env config's compact vector has {want}"
            )
    else:
        blocks = [{"name": name, "size": D}]
    A = env_config.n_actions
    try:
        out_A = torch_logits(module, rows[:1]).shape
    except RuntimeError as err:  # a student of another shape: the first matmul fails
        raise CompileError(
            f"the student does not take this library's {name!r} rows of width {D} (another "
            f"library's or env's student?): {' '.join(str(err).split())}"
        ) from None
    if out_A != (1, A):
        raise CompileError(f"student outputs logits of shape {out_A}; expected (B, {A})")

    fp32 = export_onnx(module, name, D, opset=opset)
    diff, scale = parity(fp32, module, name, rows)
    if not diff <= parity_tol * scale:
        raise CompileError(
            f"ONNX/torch parity failed: max |Δlogit| = {diff:.3g} on {len(rows)} rows "
            f"(logit scale {scale:.3g}); accepted: ≤ {parity_tol:g} × max(1, max |logit|)"
        )
    models = {"fp32": fp32}
    agree: Agreement | None = None
    closed: ClosedLoop | None = None
    if int8:
        q = quantize_int8(fp32, quant, input_name=name, calibration_ND=rows)
        if int8_hook is not None:
            q = int8_hook(q)
        if decisions is None and library is not None:
            decisions = library_decisions(library, rows, input_name=name)
        agree, closed = int8_gate(
            fp32,
            q,
            name,
            rows,
            env_config=env_config,
            min_agreement=min_agreement,
            decisions=decisions,
            tie_tol_q=tie_tol_q,
            tie_tol_logit=tie_tol_logit,
            closed_loop=closed_loop,
        )
        models["int8"] = q
    agreement = agree.raw if agree is not None else None

    pub = private_key.public_key()
    param_count = int(sum(p.numel() for p in module.parameters()))
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": {
            "name": name,
            "dim": D,
            "dtype": "float32",
            "shape": ["batch", D],
            "blocks": blocks,
            **({"layout": layout} if layout is not None else {}),
        },
        "output": {"name": OUTPUT_NAME, "dim": A, "dtype": "float32", "shape": ["batch", A]},
        "n_actions": A,
        "k_paths": env_config.k_paths,
        "grant_levels": env_config.grant_levels,
        "feature_config": (fc := feature_config(env_config, catalog)),
        "feature_config_sha256": feature_config_sha256(fc),
        "env_config": env_config.model_dump(mode="json"),
        "env_config_sha256": env_config_sha256(env_config),
        "catalog": list(catalog.names),
        "versions": {
            "pcnalloc": pcnalloc.__version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "opset": opset,
        },
        "student": {
            "class": type(module).__name__,
            "param_count": int(getattr(module, "param_count", param_count)),
            "param_bytes": int(getattr(module, "param_bytes", param_count * 4)),
        },
        "validation": {
            "rows": len(rows),
            "parity_max_abs": diff,
            "parity_logit_scale": scale,
            "parity_tol": parity_tol,
            "int8_argmax_agreement": agreement,
            "int8_decision_agreement": agree.decision if agree is not None else None,
            "int8_min_agreement": min_agreement if int8 else None,
            "int8_agreement": agree.to_json() if agree is not None else None,
            "int8_quantization": quant.to_json() if int8 else None,
            "int8_closed_loop": closed.to_json() if closed is not None else None,
            "int8_refused": int8_refused,
        },
        "models": {
            p: {"file": MODEL_FILES[p], "sha256": sha256_bytes(b), "bytes": len(b)}
            for p, b in models.items()
        },
        "source": source or {},
        "signature": {"algorithm": "Ed25519", "key_id": keys.key_id(pub)},
    }
    files = {MODEL_FILES[p]: b for p, b in models.items()}
    if network is not None:
        nb = network_bytes(network)
        files[NETWORK_FILE] = nb
        manifest["network"] = {
            "file": NETWORK_FILE,
            "sha256": sha256_bytes(nb),
            "bytes": len(nb),
            "name": network.name,
            "sites": int(network.n_sites),
            "links": int(network.n_links),
        }
    raw = manifest_bytes(manifest)
    files[MANIFEST] = raw
    files[SIGNATURE] = keys.sign(private_key, raw)
    files[SIGNER_PUB] = keys.public_pem(pub)
    publish_dir(out, files, overwrite=overwrite)
    log.info("compiled %s (parity %.2g, int8 %s)", out, diff, agreement)
    return CompileResult(
        out,
        manifest,
        diff,
        agreement,
        {p: len(b) for p, b in models.items()},
        int8_decision_agreement=agree.decision if agree is not None else None,
        closed_loop=closed,
        int8_refused=int8_refused,
    )


# ---------------------------------------------------------------------------- inputs
STUDENT_FORMAT = "pcnalloc-mlp/0"


def compile_with_fallback(
    module: torch.nn.Module, rows_ND: np.ndarray, *, int8: bool, **kwargs: Any
) -> tuple[CompileResult, str | None]:
    """:func:`compile_student`, shipping the fp32 model alone when the int8 gate refuses.

    The gate doing its job is not a failure of the compile: ``pcnalloc compile`` and the main
    job both ship fp32 then and report why.

    Args:
        module, rows_ND: as :func:`compile_student`.
        int8: try the int8 model first.
        **kwargs: the other keywords of :func:`compile_student`.

    Returns:
        The result and, when the int8 model was refused, the reason (else None).
    """
    try:
        return compile_student(module, rows_ND, int8=int8, **kwargs), None
    except QuantizationRejected as err:  # nothing was written: compile again without int8
        refused = {"reason": str(err), **err.details}
        res = compile_student(module, rows_ND, int8=False, int8_refused=refused, **kwargs)
        return res, str(err)


def gate_options(cfg: CompileConfig = COMPILE_DEFAULTS) -> dict[str, Any]:
    """The :func:`compile_student` keywords of a compile config's int8 gates and settings
    (``int8`` and ``rows`` excepted), so the CLI and the main job map the fields once."""
    return {
        "min_agreement": cfg.min_agreement,
        "tie_tol_q": cfg.tie_tol_q,
        "tie_tol_logit": cfg.tie_tol_logit,
        "quant": QuantSettings(
            mode=cfg.int8_mode,
            per_channel=cfg.int8_per_channel,
            format=cfg.int8_format,
            keep_fp32=tuple(cfg.int8_keep_fp32),
        ),
        "closed_loop": (
            ClosedLoopSpec(
                seeds=tuple(cfg.closed_loop_seeds),
                requests=cfg.closed_loop_requests,
                min_ratio=cfg.min_value_ratio,
            )
            if cfg.closed_loop
            else None
        ),
    }


def save_student_checkpoint(module: torch.nn.Module, path: str | Path) -> Path:
    """Write a plain Linear/ReLU ``nn.Sequential`` student (tests, benchmarks).

    The file holds ``{"format", "input_key", "state_dict"}`` and loads with
    ``torch.load(weights_only=True)``.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    ck = {
        "format": STUDENT_FORMAT,
        "input_key": str(getattr(module, "input_key", "compact")),
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(ck, buf)
    return write_atomic(p, buf.getbuffer())


def load_student_module(ckpt: str | Path | torch.nn.Module) -> torch.nn.Module:
    """The student module of a checkpoint, in eval mode, with ``input_key`` set.

    Accepts a module; a ``pcnalloc distill`` output (``student.pt`` or its folder, read with
    :func:`pcnalloc.distill.load_student`); or a plain Linear/ReLU MLP saved with
    :func:`save_student_checkpoint` (layer sizes read from the weight shapes).

    Raises:
        CompileError: a missing or unreadable file, or a checkpoint that is none of the above.
    """
    if isinstance(ckpt, torch.nn.Module):
        return ckpt.eval()
    p = Path(ckpt)
    if p.is_dir():
        p = p / "student.pt"
    if not p.is_file():
        raise CompileError(f"student checkpoint {str(p)!r} does not exist")
    try:
        ck = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types on a bad file
        raise CompileError(f"cannot read student checkpoint {str(p)!r}: {err}") from None
    from pcnalloc.distill.checkpoint import STUDENT_FORMAT as DISTILL_FORMAT
    from pcnalloc.distill.checkpoint import load_student

    if isinstance(ck, dict) and ck.get("format") == DISTILL_FORMAT:
        return load_student(p)[0].eval()
    sd = ck.get("state_dict") if isinstance(ck, dict) else None
    if not isinstance(sd, dict):
        raise CompileError(
            f"student checkpoint {str(p)!r} has no state_dict; accepted: `pcnalloc distill` "
            f"output ({DISTILL_FORMAT}) or {STUDENT_FORMAT} (a Linear/ReLU MLP)"
        )
    module = _mlp_from_state_dict(sd, str(p))
    module.input_key = str(ck.get("input_key", "compact"))  # type: ignore[assignment]
    return module.eval()


def _mlp_from_state_dict(sd: dict[str, Any], where: str) -> torch.nn.Sequential:
    weights = [(k, v) for k, v in sd.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise CompileError(f"student checkpoint {where!r}: no Linear weights in its state_dict")
    layers: list[torch.nn.Module] = []
    for i, (_, w) in enumerate(weights):
        layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU())
    seq = torch.nn.Sequential(*layers)
    params = [t for k, t in sd.items() if k.endswith(("weight", "bias"))]
    own = list(seq.parameters())
    if len(params) != len(own) or any(a.shape != b.shape for a, b in zip(params, own, strict=True)):
        raise CompileError(
            f"student checkpoint {where!r}: state_dict is not a plain Linear/ReLU MLP"
        )
    with torch.no_grad():
        for a, b in zip(params, own, strict=True):
            b.copy_(a)
    return seq


def _sample(
    library: str | Path, columns: list[str], *, max_rows: int, seed: int
) -> tuple[dict[str, np.ndarray], EnvConfig]:
    """≤ ``max_rows`` rows of ``columns``, drawn uniformly without replacement (seeded)."""
    from pcnalloc.library.reader import LibraryReader

    reader = LibraryReader(library)
    n = reader.num_rows
    if n == 0:
        raise CompileError(f"library {str(library)!r} has no rows")
    take = np.sort(np.random.default_rng(seed).choice(n, min(n, max_rows), replace=False))
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    start = 0
    for batch in reader.iter_batches(8192, columns):
        sel = take[(take >= start) & (take < start + len(batch[columns[0]]))] - start
        if sel.size:
            for c in columns:
                parts[c].append(np.asarray(batch[c])[sel])
        start += len(batch[columns[0]])
    out = {c: np.concatenate(v) for c, v in parts.items()}
    env = EnvConfig.model_validate(reader.metadata["env_config"])
    return out, env


def library_rows(
    library: str | Path,
    input_name: str = "compact",
    *,
    max_rows: int = COMPILE_DEFAULTS.rows,
    seed: int = 0,
) -> tuple[np.ndarray, EnvConfig]:
    """Sample rows (≤ ``max_rows``, (N, D) float32) and the env config of a library.

    Rows are drawn uniformly without replacement with a seeded generator, so the same
    library always gives the same gate.
    """
    cols, env = _sample(library, [input_name], max_rows=max_rows, seed=seed)
    return np.asarray(cols[input_name], dtype=np.float32), env


def library_decisions(
    library: str | Path, rows_ND: np.ndarray, *, input_name: str = "compact", seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's Q-values and action masks (N, A) of rows :func:`library_rows` sampled.

    Raises:
        CompileError: ``rows_ND`` are not the rows that library and seed give.
    """
    cols, _ = _sample(
        library, [input_name, "q_values", "action_mask"], max_rows=len(rows_ND), seed=seed
    )
    x = np.asarray(cols[input_name], dtype=np.float32)
    if x.shape != np.shape(rows_ND) or not np.array_equal(x, rows_ND):
        raise CompileError(
            f"the sample rows are not library {str(library)!r}'s rows for seed {seed}; pass "
            "the rows library_rows returned, or the decisions themselves"
        )
    return np.asarray(cols["q_values"], np.float32), np.asarray(cols["action_mask"], np.int8)


__all__ = [
    "ClosedLoopRejected",
    "CompileError",
    "CompileResult",
    "QuantizationRejected",
    "argmax_agreement",
    "compile_student",
    "compile_with_fallback",
    "export_onnx",
    "gate_options",
    "int8_gate",
    "library_decisions",
    "library_rows",
    "load_student_module",
    "parity_max_abs",
    "quantize_int8",
    "save_student_checkpoint",
]
