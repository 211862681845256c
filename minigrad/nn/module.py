"""Module: a layer or a network, holding Parameters and sub-modules (PyTorch's design, in miniature).

Assigning a Parameter or a Module to an attribute registers it, so ``parameters()`` finds it:

    class TwoLayers(Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = Linear(4, 8), Linear(8, 2)
        def forward(self, x):
            return self.fc2(relu(self.fc1(x)))
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .. import backend
from ..tensor import HookHandle, Tensor


class Parameter(Tensor):
    """A leaf tensor that a Module owns and an optimizer updates (requires_grad=True)."""

    def __init__(self, data):
        data = data.data if isinstance(data, Tensor) else data
        super().__init__(data, requires_grad=True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    training = True

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_forward_hooks", [])

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning attributes")
        if name in self._parameters and isinstance(value, Tensor) and not isinstance(value, Parameter):
            raise TypeError(f"{type(self).__name__}.{name} is a Parameter; assign a Parameter (mg.nn.Parameter(...)), "
                            "or change its data in place with .data")
        for registry, kind in ((self._parameters, Parameter), (self._modules, Module)):
            if isinstance(value, kind):
                registry[name] = value       # a new name goes last; a reassigned one keeps its place
            else:
                registry.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *inputs):
        try:
            output = self.forward(*inputs)
        except (ValueError, TypeError, RuntimeError) as err:
            _name_the_layer(err, self)
            raise
        for hook in list(self._forward_hooks):
            replaced = hook(self, inputs, output)
            if replaced is not None:
                output = replaced
        return output

    def register_forward_hook(self, hook):
        """Call ``hook(module, inputs, output)`` after every forward; a returned value replaces the output.

        Returns a handle whose ``remove()`` unregisters the hook.  (minigrad.trace builds on this.)
        """
        self._forward_hooks.append(hook)
        return HookHandle(self._forward_hooks, hook)

    # ----- the tree of modules and parameters --------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "", _seen: set | None = None) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module and everything inside it; a module used twice is listed once."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) for every parameter in the tree, e.g. ('features.0.weight', ...).

        A parameter shared by two layers (tied weights) is listed once, under its first name, so that
        an optimizer updates it once.
        """
        seen = set()
        for prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                if id(param) not in seen:
                    seen.add(id(param))
                    yield (f"{prefix}.{name}" if prefix else name), param

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    # ----- modes, devices, gradients -----------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and everything inside it."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off): ``train(False)``."""
        return self.train(False)

    def to(self, device=None, dtype=None) -> Module:
        """Move every parameter (and its gradient) to ``device`` and/or cast it to ``dtype``, in place.

        ``model.to("cuda")``, ``model.to(dtype=mg.float64)`` (what gradient checks want); returns the module.
        """
        for param in self.parameters():
            for tensor in (param, param.grad):
                if tensor is None:
                    continue
                data = tensor.data if device is None else backend.to_device(tensor.data, device)
                tensor.data = data if dtype is None else data.astype(dtype, copy=False)
        return self

    def zero_grad(self) -> None:
        for param in self.parameters():
            param.grad = None

    # ----- saving and loading ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """{dotted name: parameter data} as detached tensors (sharing memory with the parameters)."""
        return {name: param.detach() for name, param in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy parameters in from ``state`` (Tensors or arrays, any device), onto this module's devices.

        Every key must match and every shape agree; otherwise nothing is loaded and the error
        lists what is missing, unexpected or mismatched.
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state))
        unexpected = sorted(set(state) - set(params))
        problems = []
        if missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        for name in sorted(set(params) & set(state)):
            shape = tuple(state[name].shape)
            if shape != params[name].shape:
                problems.append(f"{name}: shape {shape} in the state dict, {params[name].shape} in the model")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed; " + "; ".join(problems))
        for name, param in params.items():
            value = state[name].data if isinstance(state[name], Tensor) else np.asarray(state[name])
            param.data = backend.to_device(value, param.device).astype(param.dtype, copy=True)

    # ----- description -------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The layer's settings, shown inside its repr: 'Conv2d(3, 96, kernel_size=(11, 11), ...)'."""
        return ""

    def __repr__(self) -> str:
        children = [f"  ({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"


def _name_the_layer(err: Exception, module: Module) -> None:
    """Put the failing layer into an error's message as it travels out through the modules.

    The innermost module records itself; every module the error passes on the way out looks that
    layer up among its own descendants and rewrites the message with the dotted path from itself,
    so the outermost module's view wins:
    'towers.0.conv2 (Conv2d(48, 128, ...)): conv2d: expected input of shape (N, 48, H, W) ..., got ...'.
    """
    if not hasattr(err, "_minigrad_layer"):
        err._minigrad_layer, err._minigrad_message = module, str(err)
    failing = err._minigrad_layer
    path = next((name for name, m in module.named_modules() if m is failing), None)
    if path is None:   # the error came from elsewhere (raised again through another network): keep what it says
        return
    # A layer's one-line repr says what it is; a block's or network's would be its whole tree: its class then.
    described = repr(failing) if next(failing.children(), None) is None else type(failing).__name__
    message = err._minigrad_message
    if path:
        err.args = (f"{path} ({described}): {message}",)
    elif not message.startswith(f"{described}:"):      # (a network's own check may name it already)
        err.args = (f"{described}: {message}",)


class ModuleList(Module):
    """A list of modules, registered under the names 0, 1, 2, ... (AlexNet's towers)."""

    def __init__(self, modules=()):
        super().__init__()
        for i, module in enumerate(modules):
            setattr(self, str(i), module)

    def __getitem__(self, index: int) -> Module:
        return list(self.children())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self.children()))


class Sequential(ModuleList):
    """Modules applied one after another; children are named 0, 1, 2, ..."""

    def __init__(self, *modules: Module):
        super().__init__(modules)

    def forward(self, x):
        for module in self.children():
            x = module(x)
        return x
