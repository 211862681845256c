"""Tensor: an array (numpy or cupy) plus what autograd needs to send gradients back through it.

    x = mg.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    y = (x * x).sum()          # y.grad_fn is a Sum whose input came from a Mul
    y.backward()               # x.grad == 2 * x

``backward`` walks the graph of Functions from ``y`` to the leaves in reverse
topological order (iteratively: no recursion limit on the depth of a graph), giving each
Function the sum of the gradients that flowed into its outputs.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .function import Function

float32, float64 = np.float32, np.float64


class Tensor:
    __array_priority__ = 1000  # numpy scalars/arrays on the left of an operator defer to Tensor

    def __init__(self, data, requires_grad: bool = False, *, _grad_fn: Function | None = None, _output_index: int = 0):
        if requires_grad and data.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {data.dtype}")
        if isinstance(data, np.generic):      # NumPy reductions return scalars; a Tensor always holds an array
            data = np.asarray(data)
        self.data = data                      # the raw ndarray (numpy or cupy)
        self.grad: Tensor | None = None       # filled by backward() for leaves and retain_grad() tensors
        self.requires_grad = requires_grad
        self.grad_fn = _grad_fn               # the Function that made this tensor (None for leaves)
        self._output_index = _output_index    # which of grad_fn's outputs this is
        self._hooks: list = []
        self._retains_grad = False

    # ----- description ------------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: int(self.data.size))
    device = property(lambda self: backend.device_of(self.data))
    is_leaf = property(lambda self: self.grad_fn is None)

    def __repr__(self) -> str:
        body = np.array2string(backend.to_numpy(self.data), separator=", ", prefix="tensor(", threshold=200)
        extra = f", grad_fn={self.grad_fn!r}" if self.grad_fn else (", requires_grad=True" if self.requires_grad else "")
        return f"tensor({body}, shape={self.shape}, dtype={self.dtype}, device={self.device}{extra})"

    def __len__(self) -> int:
        return len(self.data)

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (copied to the host if the tensor is on a GPU)."""
        return backend.to_numpy(self.data)

    def item(self):
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph (no grad_fn, requires_grad=False)."""
        return Tensor(self.data)

    def to(self, device) -> Tensor:
        """This tensor on ``device``; differentiable, so gradients flow back to the original device."""
        if backend.parse_device(device) == self.device:
            return self
        from .functional.shape import ToDevice
        return ToDevice(device)(self)

    # ----- autograd ---------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Make this leaf tensor require (or stop requiring) gradients, in place; returns it."""
        if not self.is_leaf:
            raise RuntimeError(f"requires_grad_() works on leaf tensors only; this one was made by {self.grad_fn!r} "
                               "(use .detach().requires_grad_() for a new leaf)")
        if requires_grad and self.dtype.kind not in "fc":
            raise TypeError(f"only floating-point tensors can require gradients, got dtype {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        self._retains_grad = True

    def register_hook(self, hook) -> HookHandle:
        """Call ``hook(grad)`` when this tensor's gradient is ready; a returned Tensor replaces the gradient.
        Return a new Tensor rather than changing ``grad`` in place: its array may be shared (see ``backward``).

        Returns a handle whose ``remove()`` unregisters the hook.  On a tensor made by an op the hook is
        kept by that op's graph node, so it runs even if this Tensor object is gone by then (as in PyTorch).
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        hooks = self._hooks if self.grad_fn is None else self.grad_fn.hooks_of_output(self._output_index)
        hooks.append(hook)
        return HookHandle(hooks, hook)

    def _run_hooks(self, grad):
        return _apply_hooks(self._hooks, grad, self.shape, self.device, self.dtype)

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires grad, adding it into ``leaf.grad``.

        grad: d(loss)/d(self); may be omitted only when self holds one element (then it is 1).  It is used as
            it is, not copied (as in PyTorch): hooks and each op's backward may see this very array, and must
            not change it in place.  No ``.grad`` ever shares its memory.
        retain_graph: keep the saved buffers so that backward can go through the graph again.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (did you create it under no_grad(), "
                               "or forget requires_grad=True on the inputs?)")
        caller_gave_grad = grad is not None
        with backend.device_context(self.data):
            if grad is None:
                if self.size != 1:
                    raise RuntimeError(f"backward() without a grad argument needs a single-element output; this one "
                                       f"has shape {self.shape}. Pass grad= (the gradient of the loss w.r.t. this "
                                       "tensor).")
                grad = backend.xp(self.data).ones_like(self.data)
            else:
                grad = grad.data if isinstance(grad, Tensor) else grad
                grad = backend.xp(self.data).asarray(backend.to_device(grad, self.device), dtype=self.dtype)
                if grad.shape != self.data.shape:
                    raise ValueError(f"backward(): grad has shape {tuple(grad.shape)}, expected the tensor's shape "
                                     f"{self.shape}")
        handed_out: set[int] = set()   # memory already given to some .grad in this backward (see _own)
        if caller_gave_grad:   # used as it is, not copied (37 MB at AlexNet's conv1); a .grad that would share it gets a copy
            handed_out.add(id(_memory_owner(grad)))
        leaf_grads = {self: grad} if self.grad_fn is None else _backpropagate(self, grad, retain_graph, handed_out)
        for leaf, g in leaf_grads.items():
            with backend.device_context(leaf.data):
                leaf._accumulate(leaf._run_hooks(g), handed_out)

    def _accumulate(self, grad, handed_out: set) -> None:
        """Add ``grad`` to ``.grad``.  A first gradient is kept as it is (copied only if ``_own`` says so);
        later ones make a new array, so nothing needs copying then."""
        self.grad = Tensor(_own(grad, handed_out)) if self.grad is None else Tensor(self.grad.data + grad)

    # The graph is keyed by identity: tensors are dict keys in backward, and == is not defined.
    __hash__ = object.__hash__

    # ----- operators and methods: thin wrappers over minigrad.functional -----------------------
    def __add__(self, other): return F.add(self, other)
    def __radd__(self, other): return F.add(other, self)
    def __sub__(self, other): return F.sub(self, other)
    def __rsub__(self, other): return F.sub(other, self)
    def __mul__(self, other): return F.mul(self, other)
    def __rmul__(self, other): return F.mul(other, self)
    def __truediv__(self, other): return F.div(self, other)
    def __rtruediv__(self, other): return F.div(other, self)
    def __neg__(self): return F.neg(self)
    def __pow__(self, other): return F.pow(self, other)
    def __rpow__(self, other): return F.pow(other, self)
    def __matmul__(self, other): return F.matmul(self, other)
    def __rmatmul__(self, other): return F.matmul(other, self)
    def __getitem__(self, index): return F.getitem(self, index)

    def exp(self): return F.exp(self)
    def log(self): return F.log(self)
    def sqrt(self): return F.sqrt(self)
    def relu(self): return F.relu(self)
    def sum(self, axis=None, keepdims=False): return F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return F.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return F.max(self, axis, keepdims)
    def reshape(self, *shape): return F.reshape(self, *shape)
    def transpose(self, *axes): return F.transpose(self, *axes)
    def permute(self, *axes): return F.transpose(self, *axes)
    def flatten(self, start_axis=0, end_axis=-1): return F.flatten(self, start_axis, end_axis)
    T = property(lambda self: F.transpose(self))

    def argmax(self, axis=None) -> Tensor:
        """Indices of the maxima (not differentiable)."""
        return Tensor(self.data.argmax(axis=axis))


class HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _backpropagate(root: Tensor, grad, retain_graph: bool, handed_out: set) -> dict:
    """The autograd engine: run every Function's backward, outputs before inputs.

    Returns {leaf: gradient} with every path into each leaf summed; the caller adds
    those into ``leaf.grad``.  Non-leaf gradients are summed in ``pending`` until the
    Function that made the tensor is reached, then handed to it (after hooks).
    """
    leaf_grads: dict[Tensor, object] = {}
    pending = {root.grad_fn: [None] * len(root.grad_fn.output_meta)}   # pending[fn][i]: grad of fn's output i
    pending[root.grad_fn][root._output_index] = grad
    for fn in _topological_order(root.grad_fn):
        output_grads = pending.pop(fn, None)
        if output_grads is None:   # every gradient into fn was None: nothing flows through it
            if not retain_graph:
                fn.release()
            continue
        for i, ref in enumerate(fn.outputs):
            shape, dtype, device = fn.output_meta[i]
            if output_grads[i] is None:   # an output nothing downstream used, e.g. one half of a split
                output_grads[i] = backend.zeros(shape, dtype, device)
                continue
            with backend.on_device(device):
                if fn.output_hooks and fn.output_hooks.get(i):
                    output_grads[i] = _apply_hooks(fn.output_hooks[i], output_grads[i], shape, device, dtype)
                output = ref()
                if output is not None and output._retains_grad:
                    output._accumulate(output_grads[i], handed_out)
        with backend.device_context(fn.inputs[0].data):
            input_grads = fn.backward(*output_grads)
        input_grads = input_grads if isinstance(input_grads, tuple) else (input_grads,)
        if len(input_grads) != len(fn.inputs):
            raise RuntimeError(f"{fn.name}.backward returned {len(input_grads)} gradient(s) for {len(fn.inputs)} "
                               "input(s); return one per input (None where there is none)")
        for x, gx in zip(fn.inputs, input_grads):
            if gx is None or not x.requires_grad:
                continue
            if gx.shape != x.data.shape:
                raise RuntimeError(f"{fn.name}.backward returned a gradient of shape {tuple(gx.shape)} "
                                   f"for an input of shape {x.shape} (a bug in that op)")
            with backend.device_context(x.data):
                gx = gx.astype(x.dtype, copy=False)   # a float32 input gets a float32 gradient
                if x.grad_fn is None:
                    leaf_grads[x] = gx if x not in leaf_grads else leaf_grads[x] + gx
                else:
                    slots = pending.setdefault(x.grad_fn, [None] * len(x.grad_fn.output_meta))
                    i = x._output_index
                    slots[i] = gx if slots[i] is None else slots[i] + gx
        if not retain_graph:
            fn.release()
    return leaf_grads


def _apply_hooks(hooks: list, grad, shape, device, dtype):
    """Run tensor hooks in order; a hook may return a replacement gradient of the same shape and device."""
    for hook in list(hooks):   # a copy: a hook may remove itself
        result = hook(Tensor(grad))
        if result is None:
            continue
        result = result.data if isinstance(result, Tensor) else result
        if tuple(result.shape) != tuple(shape) or backend.device_of(result) != device:
            raise RuntimeError(f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                               f"{tuple(result.shape)} on {backend.device_of(result)}; the tensor it is "
                               f"registered on has shape {tuple(shape)} on {device}")
        grad = result.astype(dtype, copy=False)
    return grad


def _memory_owner(array):
    """The array at the root of ``array``'s chain of views.  Views of one array share that root; an array made
    on memory from elsewhere (``torch.Tensor.numpy()``, ``np.frombuffer``) is the root of its own views."""
    while isinstance(array.base, type(array)):
        array = array.base
    return array


def _own(grad, handed_out: set):
    """``grad``, copied if its memory already went to another tensor's ``.grad`` in this backward.

    Ops may pass one array to several inputs (a + b gives ∂L/∂y to both); without this, changing
    a.grad in place would change b.grad.  Copies happen only when memory really is shared.
    """
    owner = _memory_owner(grad)
    if id(owner) in handed_out:
        return grad.copy()
    handed_out.add(id(owner))
    return grad


def _topological_order(root: Function) -> list[Function]:
    """Functions reachable from ``root``, each before the Functions that made its inputs.

    Iterative depth-first search: a function is appended after everything it depends on,
    and the reversed list is the order in which backward may run them.
    """
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        fn, inputs_done = stack.pop()
        if inputs_done:
            order.append(fn)
            continue
        if fn in visited:
            continue
        if fn.released:
            raise RuntimeError(f"backward through {fn.name} a second time: its saved buffers were freed after the "
                               "first backward. Call the first backward(retain_graph=True) to go through a graph twice.")
        visited.add(fn)
        stack.append((fn, True))
        for x in fn.inputs:
            if x.grad_fn is not None and x.grad_fn not in visited:
                stack.append((x.grad_fn, False))
    return order[::-1]


def tensor(data, requires_grad: bool = False, device="cpu", dtype=None) -> Tensor:
    """Make a leaf tensor from a number, a (nested) list, a numpy/cupy array or a Tensor; the data is copied.

    dtype, when not given, follows PyTorch: Python floats become float32, Python ints and
    bools stay int64/bool (class labels), and arrays keep their dtype (float64 stays float64).
    """
    if isinstance(data, Tensor):
        data = data.data
    has_dtype = hasattr(data, "dtype")
    array = data.copy() if backend.is_cupy(data) else np.array(data)
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    elif array.dtype.kind == "f" and not has_dtype:
        array = array.astype(np.float32)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"tensor(): cannot make a tensor from data of dtype {array.dtype}")
    return Tensor(backend.to_device(array, device), requires_grad=requires_grad)


from . import functional as F  # noqa: E402  (the ops need Tensor defined first)
