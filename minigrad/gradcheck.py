"""Numerical gradient checking: compare backward() with central differences.

For a function f of tensors, gradcheck reduces the output(s) to a scalar
L = Σ rᵢ·f(x)ᵢ with fixed random weights r (so every output element counts), then
compares, for every element of every input that requires grad,

    analytic:  ∂L/∂xⱼ from backward()
    numeric:   (L(x + ε·eⱼ) − L(x − ε·eⱼ)) / 2ε        error O(ε²)

and accepts when |analytic − numeric| ≤ atol + rtol·|numeric| everywhere.
In float64 with ε = 1e-6 the numeric value is good to ~1e-9, so a disagreement at
1e-5 is a bug in backward, not rounding.  Float32 is far too coarse for this, so
non-float64 inputs are upcast to float64 copies with a warning.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import backend
from .function import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """backward() disagrees with the numerical gradient; the message holds a table per input."""


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check ``fn``'s gradients w.r.t. every input that requires grad.  Returns True or raises GradcheckError.

    fn: takes the tensors in ``inputs`` and returns a Tensor or a tuple of Tensors.
    fn must be deterministic (fix a dropout mask, for example): it is called 2·(number of elements) + 1 times.
    """
    rows = gradient_table(fn, inputs, eps, atol, rtol, seed)
    failed = sum(row["status"] == "FAIL" for row in rows)
    if failed:
        raise GradcheckError(f"gradcheck failed for {failed} of {len(rows)} input(s) "
                             f"(eps={eps:g}, atol={atol:g}, rtol={rtol:g}; tolerance = atol + rtol·|numeric|)\n"
                             + format_table(rows))
    return True


def gradient_table(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> list[dict]:
    """The comparison behind gradcheck, one row per input that requires grad (examples/gradcheck_tour.py prints it).

    Row keys: input, shape, abs and rel (the largest errors over all elements), index (the worst element:
    the one that uses most of its tolerance), analytic and numeric there, status ("ok" or "FAIL").
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            warnings.warn(f"gradcheck: input {i} is {x.dtype}; checking a float64 copy instead "
                          f"(central differences need float64 precision)", stacklevel=3)
            inputs[i] = Tensor(x.data.astype(np.float64), requires_grad=True)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")

    outputs = _as_tuple(fn(*inputs))
    rng = np.random.default_rng(seed)
    weights = [backend.to_device(rng.standard_normal(y.shape), y.device) for y in outputs]

    def weighted_sum(ys) -> float:
        return float(sum(float((y.data * w).sum()) for y, w in zip(ys, weights)))

    kept_grads = {i: inputs[i].grad for i in checked}   # the caller's gradients, put back at the end
    for i in checked:
        inputs[i].grad = None
    loss = None
    for y, w in zip(outputs, weights):
        if y.requires_grad:
            term = (y * Tensor(w)).sum()
            loss = term if loss is None else loss + term
    if loss is not None:
        loss.backward()

    rows = []
    for i in checked:
        x = inputs[i]
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.numpy()
        numeric = np.zeros(x.shape)
        with no_grad():
            for j in np.ndindex(*x.shape):
                original = x.data[j].item()
                x.data[j] = original + eps
                plus = weighted_sum(_as_tuple(fn(*inputs)))
                x.data[j] = original - eps
                minus = weighted_sum(_as_tuple(fn(*inputs)))
                x.data[j] = original
                numeric[j] = (plus - minus) / (2 * eps)
        rows.append(_compare(i, x.shape, analytic, numeric, atol, rtol))
    for i, grad in kept_grads.items():
        inputs[i].grad = grad
    return rows


def _as_tuple(outputs) -> tuple:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _compare(i, shape, analytic, numeric, atol, rtol) -> dict:
    err = np.abs(analytic - numeric)
    tolerance = atol + rtol * np.abs(numeric)
    bad = ~(err <= tolerance)                                # NaN counts as bad
    used = np.where(np.isnan(err), np.inf, err / np.maximum(tolerance, np.finfo(err.dtype).tiny))   # share used
    worst = np.unravel_index(np.argmax(used), shape) if err.size else ()
    rel = err / np.maximum(np.abs(numeric), 1e-12)
    return {"input": i, "shape": shape, "abs": np.max(err, initial=0.0), "rel": np.max(rel, initial=0.0),
            "index": tuple(int(k) for k in worst),
            "analytic": analytic[worst] if err.size else 0.0, "numeric": numeric[worst] if err.size else 0.0,
            "status": "FAIL" if bad.any() else "ok"}


def format_table(rows) -> str:
    header = ("input", "shape", "max abs err", "max rel err", "worst index", "analytic", "numeric", "status")
    lines = [header] + [(str(r["input"]), str(r["shape"]), f"{r['abs']:.3e}", f"{r['rel']:.3e}", str(r["index"]),
                         f"{r['analytic']:.6e}", f"{r['numeric']:.6e}", r["status"]) for r in rows]
    widths = [max(len(line[c]) for line in lines) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
