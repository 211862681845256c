"""Function: the base of every differentiable op, forward and backward side by side.

An op subclasses Function and writes two methods on raw arrays (numpy or cupy):

    forward(self, *arrays)  -> an array, or a tuple of arrays (ops such as split)
    backward(self, *grads)  -> one gradient per input (an array, or None for "no gradient")

``backward`` receives one gradient per output, each the shape of that output, and
returns gradients the shape of the inputs.  Calling an op instance on tensors runs
forward and, when a gradient is needed, records the op in the graph:

    y = Exp()(x)            # y.grad_fn is that Exp instance; y.grad_fn.inputs == (x,)

Saved buffers: whatever ``forward`` stores on ``self`` (``self.y = y``) is kept for
``backward`` and deleted right after it, unless ``backward(retain_graph=True)``.
That rule is the whole of minigrad's memory management for the graph.
"""
from __future__ import annotations

import contextlib
import weakref

import numpy as np

from . import backend

_grad_enabled = True


def is_grad_enabled() -> bool:
    return _grad_enabled


@contextlib.contextmanager
def no_grad():
    """Inside ``with mg.no_grad():`` ops record no graph and keep no buffers (inference, updates)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


class Function:
    inputs: tuple = ()               # the input Tensors, kept while the graph is alive
    needs_input_grad: tuple = ()     # per input: does it want a gradient? (backward may skip work)
    outputs: tuple = ()              # weak references to the output Tensors (for retain_grad)
    output_meta: tuple = ()          # (shape, dtype, device) of each output, to build zero gradients
    saved_names: frozenset = frozenset()
    released = False                 # True once backward freed the saved buffers
    output_hooks: dict | None = None  # {output index: [hook, ...]}: hooks live with the graph, not the tensor

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{self.name}>"

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, *grads):
        raise NotImplementedError

    def __call__(self, *inputs):
        from .tensor import Tensor

        inputs = _as_tensors(self.name, inputs)
        record = _grad_enabled and any(t.requires_grad for t in inputs)
        self.needs_input_grad = tuple(record and t.requires_grad for t in inputs)
        arrays = [t.data for t in inputs]

        before = set(vars(self))
        with backend.device_context(arrays[0]):
            outputs = self.forward(*arrays)
        several = isinstance(outputs, tuple)
        outputs = outputs if several else (outputs,)

        if not record:
            results = tuple(Tensor(y) for y in outputs)
        else:
            self.saved_names = frozenset(vars(self)) - before
            self.inputs = inputs
            results = tuple(Tensor(y, requires_grad=True, _grad_fn=self, _output_index=i)
                            for i, y in enumerate(outputs))
            self.outputs = tuple(weakref.ref(t) for t in results)
            self.output_meta = tuple((y.shape, y.dtype, backend.device_of(y)) for y in outputs)
        return results if several else results[0]

    def hooks_of_output(self, index: int) -> list:
        """The hooks registered on output ``index``; they run even if that Tensor object is gone by then."""
        if self.output_hooks is None:
            self.output_hooks = {}
        return self.output_hooks.setdefault(index, [])

    def release(self) -> None:
        """Free the saved buffers and the links to the inputs (called after backward)."""
        for name in self.saved_names:
            delattr(self, name)
        self.inputs = ()
        self.released = True


def _as_tensors(op_name: str, inputs) -> tuple:
    """Make every input a Tensor on the one device the tensors share, with dtypes that keep float32 float32.

    - A Python number next to a float tensor takes that tensor's dtype (x * 0.5 stays float32);
      next to an integer tensor it follows NumPy (int tensor * 0.5 is float64: no truncation).
    - Integer and bool tensors next to float ones are cast to the float dtype, as PyTorch does
      (float32 * int64 is float32 here, not NumPy's float64).
    - Tensors on different devices are refused with both devices named.
    """
    from .tensor import Tensor

    tensors = [x for x in inputs if isinstance(x, Tensor)]
    if not tensors:
        raise TypeError(f"{op_name}: expected at least one Tensor input, got {[type(x).__name__ for x in inputs]}")
    devices = {t.device for t in tensors}
    if len(devices) > 1:
        names = " and ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"{op_name}: inputs are on different devices ({names}); "
                           f"move them to one device first, e.g. x.to('{tensors[0].device}')")
    device = tensors[0].device
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    float_dtype = np.result_type(*floats) if floats else None
    out = []
    for x in inputs:
        if not isinstance(x, Tensor):
            x = Tensor(backend.to_device(np.asarray(x, dtype=float_dtype if _is_number(x) else None), device))
        elif float_dtype is not None and x.dtype.kind in "iub":
            x = Tensor(x.data.astype(float_dtype))
        out.append(x)
    return tuple(out)


def _is_number(x) -> bool:
    return isinstance(x, (bool, int, float))


def sum_to_shape(grad, shape):
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting added or stretched to reach ``shape``.

    (2, 3, 4) -> (3, 1): sum axis 0 (added), then axis 2 keeping it (stretched from 1).
    """
    if grad.shape == tuple(shape):
        return grad
    added = grad.ndim - len(shape)
    grad = grad.sum(axis=tuple(range(added))) if added else grad
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=stretched, keepdims=True) if stretched else grad
