"""A compiled batch-1 runtime for plain MLP students, read from the same signed ONNX bytes.

ONNX Runtime costs a few microseconds per batch-1 call however small the model; the edge
student is a chain ``Sub → Div → [Mul] → (Gemm → Relu)* → Gemm`` of about 25k weights, which
one compiled call (BLAS ``sgemv`` per layer through numba's ``np.dot``) evaluates in about
half that time. :class:`CompiledMLP` recognises exactly that chain in the verified model
bytes (anything else raises :class:`NotAnMLP`, and the caller keeps ONNX Runtime) and checks
itself against ONNX Runtime on random rows when it is built: max |Δlogit| ≤ ``tol`` ×
max(1, max |logit|) and the same argmax on every row, else :class:`NotAnMLP`. Written here
because no kept library runs an ONNX graph without a runtime's per-call overhead; the op set
it accepts is tiny on purpose.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from numba import njit

from pcnalloc.errors import PcnallocError


class NotAnMLP(PcnallocError):
    """The model is not a plain MLP chain, or the compiled runtime disagrees with ONNX Runtime."""


@njit(cache=True, nogil=True)
def _forward(x, pre_3D, W, b, shapes, out):  # pragma: no cover - compiled
    """Forward pass: h = (x − pre[0]) / pre[1] · pre[2]; per layer h = W·h + b, ReLU between.

    ``W`` holds the layers' (out, in) weights back to back, ``b`` their biases, ``shapes``
    (n_layers, 2) the (out, in) sizes.
    """
    h = (x - pre_3D[0]) / pre_3D[1] * pre_3D[2]
    n = shapes.shape[0]
    wo = 0
    bo = 0
    for k in range(n):
        o, i = shapes[k, 0], shapes[k, 1]
        y = np.dot(W[wo : wo + o * i].reshape((o, i)), h) + b[bo : bo + o]
        wo += o * i
        bo += o
        if k < n - 1:
            h = np.maximum(y, np.float32(0.0))
        else:
            out[:] = y


def _parse(model: bytes) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    g = onnx.load_from_string(model).graph
    init = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in g.initializer}
    nodes = list(g.node)
    if len(g.input) != 1 or len(g.output) != 1:
        raise NotAnMLP("model has more than one input or output")
    cur, i, pre = g.input[0].name, 0, []
    for op in ("Sub", "Div", "Mul"):
        n = nodes[i] if i < len(nodes) else None
        if n is not None and n.op_type == op and n.input[0] == cur:
            c = init.get(n.input[1])
            if c is None or c.ndim != 1:
                raise NotAnMLP(f"{op} by something other than a constant vector")
            pre.append((op, c))
            cur, i = n.output[0], i + 1
    Ws, bs = [], []
    while i < len(nodes):
        n = nodes[i]
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        gemm = (
            n.op_type == "Gemm"
            and n.input[0] == cur
            and len(n.input) == 3
            and n.input[1] in init
            and n.input[2] in init
            and attrs.get("transB") == 1
            and attrs.get("transA", 0) == 0
            and attrs.get("alpha", 1.0) == 1.0
            and attrs.get("beta", 1.0) == 1.0
        )
        if not gemm:
            raise NotAnMLP(f"node {i} ({n.op_type}) is not a Gemm of the chain")
        Ws.append(np.ascontiguousarray(init[n.input[1]]))
        bs.append(np.ascontiguousarray(init[n.input[2]]))
        cur, i = n.output[0], i + 1
        if i < len(nodes):
            if nodes[i].op_type != "Relu" or nodes[i].input[0] != cur:
                raise NotAnMLP(f"node {i} ({nodes[i].op_type}) is not a Relu of the chain")
            cur, i = nodes[i].output[0], i + 1
    if not Ws or cur != g.output[0].name:
        raise NotAnMLP("no Gemm chain ending at the model output")
    for a, w in itertools.pairwise(Ws):
        if w.shape[1] != a.shape[0]:
            raise NotAnMLP("layer sizes do not chain")
    D = Ws[0].shape[1]
    pre_3D = np.ones((3, D), dtype=np.float32)
    pre_3D[0] = 0.0
    for op, c in pre:
        if c.shape[0] != D:
            raise NotAnMLP(f"{op} vector of {c.shape[0]} for an input of {D}")
        pre_3D[{"Sub": 0, "Div": 1, "Mul": 2}[op]] = c
    return pre_3D, Ws, bs


class CompiledMLP:
    """Batch-1 logits of a plain MLP student in one compiled call (see the module docstring).

    Args:
        model: verified ONNX bytes.
        x_1D: float32 (1, D) input buffer to read (the agent's bound buffer).
        logits_1A: float32 (1, A) output buffer to write.
        reference: (N, D) → (N, A) logits of ONNX Runtime, for the self-check.
        tol: parity tolerance, relative to max(1, max |logit|).
        rows: random rows of the self-check.

    Attributes:
        parity_max_abs: max |Δlogit| against ONNX Runtime in the self-check.

    Raises:
        NotAnMLP: the graph is not a plain MLP chain, or the self-check fails.
    """

    def __init__(
        self,
        model: bytes,
        x_1D: np.ndarray,
        logits_1A: np.ndarray,
        reference: Any,
        *,
        tol: float = 1e-5,
        rows: int = 256,
        seed: int = 0,
    ) -> None:
        pre, Ws, bs = _parse(model)
        D, A = x_1D.shape[1], logits_1A.shape[1]
        if Ws[0].shape[1] != D or Ws[-1].shape[0] != A:
            raise NotAnMLP(f"MLP {Ws[0].shape[1]} → {Ws[-1].shape[0]} for buffers {D} → {A}")
        self.pre = pre
        self.W = np.concatenate([w.ravel() for w in Ws])
        self.b = np.concatenate(bs)
        self.shapes = np.array([w.shape for w in Ws], dtype=np.int64)
        self._x, self._y = x_1D[0], logits_1A[0]
        self._check(reference, tol, rows, seed)

    def run(self) -> np.ndarray:
        """Logits (A,) for the row in the input buffer (a view of the output buffer)."""
        _forward(self._x, self.pre, self.W, self.b, self.shapes, self._y)
        return self._y

    def logits(self, x_ND: np.ndarray) -> np.ndarray:
        """Logits (N, A), row by row as :meth:`run` computes them (allocating; for checks)."""
        out = np.empty((x_ND.shape[0], self._y.shape[0]), dtype=np.float32)
        for r in range(x_ND.shape[0]):
            x = np.ascontiguousarray(x_ND[r], dtype=np.float32)
            _forward(x, self.pre, self.W, self.b, self.shapes, out[r])
        return out

    def _check(self, reference: Any, tol: float, rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        D = self._x.shape[0]
        x = (rng.standard_normal((rows, D)) * self.pre[1] + self.pre[0]).astype(np.float32)
        want = np.asarray(reference(x), dtype=np.float32)
        got = self.logits(x)
        scale = max(1.0, float(np.max(np.abs(want))))
        diff = float(np.max(np.abs(got - want)))
        if not diff <= tol * scale or not np.array_equal(got.argmax(1), want.argmax(1)):
            raise NotAnMLP(
                f"compiled MLP disagrees with ONNX Runtime (max |Δlogit| {diff:.3g}, logit "
                f"scale {scale:.3g}, tolerance {tol:g} × scale, or another argmax)"
            )
        self.parity_max_abs = diff
