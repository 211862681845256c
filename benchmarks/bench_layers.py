"""Forward + backward time of each AlexNet layer at its real shape: minigrad vs PyTorch (CPU), one run.

    python benchmarks/bench_layers.py [--batch 32] [--repeats 5] [--save benchmarks/results/layers-cpu.txt]

For every layer both frameworks get the same float32 inputs; their steps alternate (minigrad, torch,
minigrad, ...) so that both see the same machine state, and each time is the median of --repeats.
A step = forward, then backward of sum(output · upstream).  conv1's input needs no gradient, as in
the network (the image is not learned).  Ratio = minigrad time / PyTorch time (lower is better).
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import minigrad as mg
import minigrad.functional as F

# name: (input shape at batch 1, kind of op, parameter shapes, input needs grad, conv settings)
LAYERS = {
    "conv1 11/4":     ((3, 227, 227), "conv", ((96, 3, 11, 11), (96,)), False, dict(stride=4, padding=0, groups=1)),
    "relu1":          ((96, 55, 55), "relu", (), True, {}),
    "lrn1":           ((96, 55, 55), "lrn", (), True, {}),
    "pool1 3/2":      ((96, 55, 55), "pool", (), True, {}),
    "conv2 5/1/2 g2": ((96, 27, 27), "conv", ((256, 48, 5, 5), (256,)), True, dict(stride=1, padding=2, groups=2)),
    "lrn2":           ((256, 27, 27), "lrn", (), True, {}),
    "pool2 3/2":      ((256, 27, 27), "pool", (), True, {}),
    "conv3 3/1/1":    ((256, 13, 13), "conv", ((384, 256, 3, 3), (384,)), True, dict(stride=1, padding=1, groups=1)),
    "conv4 3/1/1 g2": ((384, 13, 13), "conv", ((384, 192, 3, 3), (384,)), True, dict(stride=1, padding=1, groups=2)),
    "conv5 3/1/1 g2": ((384, 13, 13), "conv", ((256, 192, 3, 3), (256,)), True, dict(stride=1, padding=1, groups=2)),
    "pool5 3/2":      ((256, 13, 13), "pool", (), True, {}),
    "fc6":            ((9216,), "linear", ((4096, 9216), (4096,)), True, {}),
    "dropout6":       ((4096,), "dropout", (), True, {}),
    "fc7":            ((4096,), "linear", ((4096, 4096), (4096,)), True, {}),
    "fc8":            ((4096,), "linear", ((1000, 4096), (1000,)), True, {}),
}


def minigrad_op(kind, settings):
    return {
        "conv": lambda x, w, b: F.conv2d(x, w, b, **settings),
        "relu": F.relu,
        "lrn": F.local_response_norm,                      # the paper's defaults
        "pool": lambda x: F.max_pool2d(x, 3, 2),
        "linear": F.linear,
        "dropout": lambda x: F.dropout(x, 0.5),
    }[kind]


def torch_op(kind, settings):
    import torch
    fn = torch.nn.functional
    return {
        "conv": lambda x, w, b: fn.conv2d(x, w, b, **settings),
        "relu": fn.relu,
        "lrn": torch.nn.LocalResponseNorm(5, alpha=1e-4 * 5, beta=0.75, k=2.0),   # = the paper's LRN
        "pool": lambda x: fn.max_pool2d(x, 3, 2),
        "linear": fn.linear,
        "dropout": lambda x: fn.dropout(x, 0.5, training=True),
    }[kind]


def time_step(make_tensor, op, arrays, needs_grad, upstream) -> float:
    """Seconds for one forward + backward; make_tensor(array, requires_grad) builds either framework's tensor."""
    tensors = [make_tensor(a, i > 0 or needs_grad) for i, a in enumerate(arrays)]
    start = time.perf_counter()
    y = op(*tensors)
    y.backward(make_tensor(upstream, False))
    return time.perf_counter() - start


def machine_info() -> str:
    import torch
    blas = "unknown"
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy: no dict mode
        pass
    return (f"machine: {platform.machine()} {platform.processor() or ''} | cores: {os.cpu_count()} | "
            f"Python {platform.python_version()} | NumPy {np.__version__} (BLAS: {blas}) | "
            f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")


def layer_table(batch: int, repeats: int, names=tuple(LAYERS)) -> list:
    """The table's lines, printed as each layer is done."""
    import torch
    rng = np.random.default_rng(0)
    lines = [f"{'layer':16s} {'input':>18s} {'minigrad ms':>12s} {'torch ms':>10s} {'ratio':>7s}"]
    print(lines[0], flush=True)
    total_mg = total_torch = 0.0
    for name in names:
        shape, kind, param_shapes, needs_grad, settings = LAYERS[name]
        op = minigrad_op(kind, settings)
        x = rng.standard_normal((batch, *shape)).astype(np.float32)
        params = [(rng.standard_normal(s) * 0.01).astype(np.float32) for s in param_shapes]
        arrays = [x, *params]
        with mg.no_grad():
            out_shape = op(*[mg.tensor(a) for a in arrays]).shape
        upstream = rng.standard_normal(out_shape).astype(np.float32)
        t_op = torch_op(kind, settings)
        ours, theirs = [], []
        for _ in range(repeats + 1):          # the first pair warms caches and allocators, and is dropped
            ours.append(time_step(lambda a, g: mg.tensor(a, requires_grad=g), op, arrays, needs_grad, upstream))
            theirs.append(time_step(lambda a, g: torch.tensor(a, requires_grad=g), t_op, arrays, needs_grad, upstream))
        m, t = statistics.median(ours[1:]) * 1e3, statistics.median(theirs[1:]) * 1e3
        total_mg, total_torch = total_mg + m, total_torch + t
        lines.append(f"{name:16s} {str((batch, *shape)):>18s} {m:12.1f} {t:10.1f} {m / t:7.2f}")
        print(lines[-1], flush=True)
    lines.append(f"{'sum':16s} {'':>18s} {total_mg:12.1f} {total_torch:10.1f} {total_mg / total_torch:7.2f}")
    print(lines[-1], flush=True)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", nargs="*", default=list(LAYERS), help="a subset of the layer names")
    parser.add_argument("--save", help="also write the table to this file")
    args = parser.parse_args()
    lines = [machine_info(), f"batch {args.batch}, float32, forward+backward, median of {args.repeats}", ""]
    print("\n".join(lines), flush=True)
    lines += layer_table(args.batch, args.repeats, args.layers)
    if args.save:
        with open(args.save, "w") as f:
            f.write(" ".join(sys.argv) + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
