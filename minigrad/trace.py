"""Recording a network's forward and backward pass layer by layer, for stepping through it.

    with Trace(model) as trace:
        loss = F.cross_entropy(model(image), [target])
        loss.backward()
    for record in trace.records: ...      # execution order: one per layer call

Each layer (by default every layer type minigrad.nn has; see ``Trace``) gets a forward hook that records
its input and output; a tensor hook on each of them records the gradient that reaches it during backward.
The records hold the arrays (for pictures) and plain numbers (for printing and JSON): shapes, the size
arithmetic, the parameters and multiply-accumulates, statistics of the output, gradient norms.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .nn import Conv2d, Dropout, Flatten, Linear, LocalResponseNorm, MaxPool2d, Module, ReLU


@dataclass
class LayerRecord:
    name: str                      # dotted module name, e.g. "towers.0.conv1"
    kind: str                      # class name: Conv2d, ReLU, ...
    module: Module = field(repr=False)
    input: np.ndarray = field(repr=False)
    output: np.ndarray = field(repr=False)
    grad_input: np.ndarray | None = field(default=None, repr=False)
    grad_output: np.ndarray | None = field(default=None, repr=False)
    input_id: int = 0              # id() of the input tensor (the Trace keeps it alive while it records)
    input_readers: int = 1         # how many recorded layers read this same input tensor (grad_input is their sum)

    @property
    def tower(self) -> int | None:
        parts = self.name.split(".")
        return int(parts[1]) if len(parts) > 2 and parts[0] == "towers" else None

    @property
    def parameters(self) -> int:
        return sum(p.size for p in self.module.parameters())

    @property
    def macs(self) -> int:
        """Multiply-accumulates of this layer for the recorded batch (conv and fully connected layers)."""
        m, n = self.module, self.input.shape[0]
        if isinstance(m, Conv2d):
            return n * int(np.prod(self.output.shape[1:])) * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        if isinstance(m, Linear):
            return n * m.in_features * m.out_features
        return 0

    def arithmetic(self) -> str:
        """How the output shape follows from the input, with the real numbers (⌊ ⌋ when the division floors)."""
        m = self.module
        if isinstance(m, (Conv2d, MaxPool2d)):
            axes = [_axis_arithmetic(self.input.shape[2 + a], m.kernel_size[a], m.stride[a], m.padding[a],
                                     self.output.shape[2 + a])
                    for a in (0, 1)]
            return axes[0] if axes[0] == axes[1] else f"height {axes[0]};  width {axes[1]}"
        if isinstance(m, Linear):
            return f"{m.in_features} inputs → {m.out_features} units"
        if isinstance(m, Flatten):
            return f"{'×'.join(map(str, self.input.shape[1:]))} = {self.output.shape[1]}"
        return "shape unchanged"

    def statistics(self) -> dict:
        out = self.output.astype(np.float64)
        return {"mean": float(out.mean()), "std": float(out.std()), "min": float(out.min()), "max": float(out.max()),
                "zeros": float((out == 0).mean())}

    def gradient_norms(self) -> dict:
        """‖∂L/∂output‖, ‖∂L/∂input‖ and the norm of each parameter's gradient."""
        norms = {"output": _norm(self.grad_output), "input": _norm(self.grad_input)}
        for name, p in self.module.named_parameters():
            norms[name] = _norm(p.grad.numpy()) if p.grad is not None else None
        return norms

    def lrn_example(self) -> dict | None:
        """One value of an LRN layer worked out by hand from the paper's formula (for LRN layers)."""
        m = self.module
        if not isinstance(m, LocalResponseNorm):
            return None
        a = self.input[0].astype(np.float64)                     # (C, H, W) of the first image
        channel = int(np.abs(a).sum(axis=(1, 2)).argmax())       # a channel with signal in it
        y, x = np.unravel_index(int(np.abs(a[channel]).argmax()), a.shape[1:])
        low, high = max(0, channel - m.size // 2), min(a.shape[0] - 1, channel + (m.size - 1) // 2)
        squares = float((a[low:high + 1, y, x] ** 2).sum())
        s = m.k + m.alpha * squares
        return {"channel": channel, "y": int(y), "x": int(x), "a": float(a[channel, y, x]), "window": [low, high],
                "sum_of_squares": squares, "denominator": s, "by_hand": float(a[channel, y, x] / s ** m.beta),
                "computed": float(self.output[0, channel, y, x]), "k": m.k, "alpha": m.alpha, "beta": m.beta,
                "n": m.size}

    def to_json(self) -> dict:
        return {"name": self.name, "kind": self.kind, "tower": self.tower, "input_readers": self.input_readers,
                "input_shape": list(self.input.shape),
                "output_shape": list(self.output.shape), "arithmetic": self.arithmetic(),
                "parameters": self.parameters, "macs": self.macs, "statistics": self.statistics(),
                "gradient_norms": self.gradient_norms(), "lrn_example": self.lrn_example()}


class Trace:
    """Record every layer of ``model`` while the ``with`` block runs (see the module docstring).

    layers: the module types to record; by default every layer type minigrad.nn has (modules with children,
    such as Sequential, are made of those).
    """

    def __init__(self, model: Module, layers: tuple = (Conv2d, Linear, LocalResponseNorm, MaxPool2d, ReLU, Dropout,
                                                      Flatten)):
        self.model, self.layers = model, layers
        self.records: list[LayerRecord] = []
        self._handles = []
        self._inputs = []     # the recorded inputs, alive until the end: a freed tensor's id() could be reused

    def __enter__(self) -> Trace:
        for name, module in self.model.named_modules():
            if isinstance(module, self.layers):
                self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:       # module hooks and tensor hooks: nothing stays behind
            handle.remove()
        self._handles, self._inputs = [], []
        readers = {}
        for record in self.records:
            readers[record.input_id] = readers.get(record.input_id, 0) + 1
        for record in self.records:
            record.input_readers = readers[record.input_id]

    def _recorder(self, name):
        def record(module, inputs, output):
            x = inputs[0]
            entry = LayerRecord(name, type(module).__name__, module, x.numpy(), output.numpy(), input_id=id(x))
            self.records.append(entry)
            self._inputs.append(x)
            if output.requires_grad:
                self._handles.append(output.register_hook(lambda g: setattr(entry, "grad_output", g.numpy())))
            if x.requires_grad:
                self._handles.append(x.register_hook(lambda g: setattr(entry, "grad_input", g.numpy())))
        return record


def _norm(array) -> float | None:
    return None if array is None else float(np.sqrt((array.astype(np.float64) ** 2).sum()))


def _axis_arithmetic(size, kernel, stride, padding, out) -> str:
    span = size - kernel + 2 * padding
    if span % stride:
        return f"⌊({size} − {kernel} + 2·{padding})/{stride}⌋ + 1 = {out}"
    return f"({size} − {kernel} + 2·{padding})/{stride} + 1 = {out}"

