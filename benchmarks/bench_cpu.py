"""The full two-tower AlexNet on the CPU: minigrad vs PyTorch in one run, then layer by layer.

    python benchmarks/bench_cpu.py [--batch 32] [--steps 5] [--save benchmarks/results/alexnet-cpu.txt]
    python benchmarks/bench_cpu.py --preset cpu     # the CPU preset examples/train_alexnet.py trains by default

--preset cpu times the small network of the default run instead (width 0.25, 67×67 crops, 10 classes,
batch 64 unless --batch says otherwise); the per-layer table is the full network's only.
--processes N runs minigrad's steps as the default run does: the batch split over N processes, one core
each (minigrad.parallel.DataParallel); PyTorch keeps its threads.

Both frameworks get the same weights (PyTorch as the grouped-convolution model with LRN per tower, which
computes the same function: tests/test_alexnet.py) and the same float32 batch.  A training step is
forward + cross-entropy + backward + SGD (momentum 0.9, weight decay 5e-4, dropout 0.5); forward-only is
evaluation mode under no_grad.  The two frameworks alternate step by step, the first step of each is
dropped, and the median is reported.

Sharing one process is the fair fight, and it helps PyTorch: importing minigrad tells glibc to keep
freed memory (backend/cpu.py), which spares PyTorch's allocations their page faults too.  So each
framework is also run alone in a fresh process (training steps, and peak memory, max RSS, there).
The per-layer table is benchmarks/bench_layers.py's.
"""
import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


# The networks timed: the paper's (the goal), and the default run's (examples/train_alexnet.py's
# "cpu" preset, on its 10 built-in classes).  Written out rather than imported from there: that would import
# minigrad, whose malloc setting must stay out of PyTorch's "alone" process; tests/test_train_alexnet.py
# checks that the two agree.
PRESETS = {"full": dict(width=1.0, input_size=227, num_classes=1000, batch=32),
           "cpu": dict(width=0.25, input_size=67, num_classes=10, batch=64)}


def batch_of_images(batch, preset="full"):
    size, classes = PRESETS[preset]["input_size"], PRESETS[preset]["num_classes"]
    images = np.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(np.float32)
    return images, np.arange(batch) % classes


def network(framework: str, preset="full"):
    """minigrad's two-tower AlexNet, or PyTorch's grouped-convolution model with LRN per tower."""
    shape = {k: v for k, v in PRESETS[preset].items() if k != "batch"}
    if framework == "minigrad":
        import minigrad as mg
        from models.alexnet import AlexNet
        mg.manual_seed(0)
        return AlexNet(**shape)
    from test_alexnet import torch_alexnet   # the grouped reference model of the equivalence test
    return torch_alexnet(2, dropout=0.5, **shape)


def build(batch, preset="full"):
    """Both networks with the same weights, and a batch."""
    import torch

    from models.alexnet import to_grouped
    ours, theirs = network("minigrad", preset), network("torch", preset)
    theirs.load_state_dict({k: torch.tensor(v) for k, v in to_grouped(ours.state_dict()).items()})
    return (ours, theirs, *batch_of_images(batch, preset))


def step_functions(framework: str, net, images, labels, processes=None):
    """(training step, forward-only step) of ``net`` on the batch, for either framework; minigrad's split over
    ``processes`` processes when that is given."""
    if framework == "minigrad":
        import minigrad as lib
        x, y, loss_of, no_grad = lib.tensor(images), labels, lib.functional.cross_entropy, lib.no_grad
    else:
        import torch as lib
        x, y, loss_of, no_grad = lib.tensor(images), lib.tensor(labels), lib.nn.functional.cross_entropy, lib.no_grad
    opt = lib.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    if framework == "minigrad" and processes:
        return parallel_step_functions(net, opt, images, labels, processes)

    def train():
        net.train()
        loss = loss_of(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def forward():
        net.eval()
        with no_grad():
            net(x)
    return train, forward


def parallel_step_functions(net, opt, images, labels, processes):
    """step_functions' two for minigrad, the batch split over ``processes`` processes (the workers end with
    this process)."""
    from minigrad.parallel import DataParallel
    parallel = DataParallel(net, processes)

    def train():
        net.train()
        opt.zero_grad()
        parallel.loss_and_gradients(images, labels)
        opt.step()

    def forward():
        net.eval()
        parallel.predict(images)
    return train, forward


def steps(ours, theirs, images, labels, processes=None):
    """(minigrad train, torch train, minigrad forward, torch forward) step functions."""
    mg_train, mg_forward = step_functions("minigrad", ours, images, labels, processes)
    torch_train, torch_forward = step_functions("torch", theirs, images, labels)
    return mg_train, torch_train, mg_forward, torch_forward


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alone(framework: str, batch: int, steps: int, preset: str, processes=None) -> tuple:
    """(median training-step seconds, peak RSS MiB) of a fresh process that builds only ``framework``'s model
    (this script again, with ``--alone``).  With processes, the peak is this process's, not its workers'."""
    command = [sys.executable, __file__, "--alone", framework, "--batch", str(batch), "--steps", str(steps),
               "--preset", preset] + (["--processes", str(processes)] if processes else [])
    seconds, peak = map(float, subprocess.run(command, capture_output=True, text=True, check=True).stdout.split())
    return seconds, peak


def run_alone(framework: str, batch: int, steps: int, preset: str, processes=None) -> None:
    """Print the median training-step seconds and the peak RSS (MiB) of this process."""
    train, _ = step_functions(framework, network(framework, preset), *batch_of_images(batch, preset), processes)
    seconds = [timed(train) for _ in range(steps + 1)]
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would start at the parent's size
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
    print(statistics.median(seconds[1:]), peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full",
                        help="full: the paper's network (default); cpu: the default run's small network")
    parser.add_argument("--batch", type=int, help="batch size (default: 32 for full, 64 for cpu)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per framework and mode (default 5)")
    parser.add_argument("--processes", type=int, help="minigrad's steps split over this many processes, one core "
                        "each, as the default run trains (default: one process, threads on every core)")
    parser.add_argument("--save", help="also write the table to this file")
    parser.add_argument("--alone", choices=("minigrad", "torch"), help=argparse.SUPPRESS)   # see alone()
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    args.batch = preset["batch"] if args.batch is None else args.batch
    if args.alone:
        run_alone(args.alone, args.batch, args.steps, args.preset, args.processes if args.alone == "minigrad" else None)
        return
    from bench_layers import layer_table, machine_info
    size, what = preset["input_size"], "full" if args.preset == "full" else f"width {preset['width']} (the CPU preset)"
    how = (f"minigrad in {args.processes} processes (minigrad.parallel)" if args.processes
           else "minigrad in one process")
    lines = [machine_info(), f"{what} two-tower AlexNet, batch {args.batch}, {size}×{size}, {preset['num_classes']} "
             f"classes, float32; {how}; median of {args.steps} steps after 1 warm-up", ""]
    print("\n".join(lines), flush=True)
    ours, theirs, images, labels = build(args.batch, args.preset)
    mg_train, torch_train, mg_forward, torch_forward = steps(ours, theirs, images, labels, args.processes)
    rows = [f"{'one run, alternating' if args.processes else 'one process, alternating':30s} {'minigrad':>10s} {'PyTorch':>10s} {'time ratio':>11s}"]
    for mode, a, b in (("training step", mg_train, torch_train), ("forward only (eval)", mg_forward, torch_forward)):
        ours_t, theirs_t = [], []
        for _ in range(args.steps + 1):
            ours_t.append(timed(a))
            theirs_t.append(timed(b))
        m, t = statistics.median(ours_t[1:]), statistics.median(theirs_t[1:])
        rows.append(f"{'  ' + mode + ' img/s':30s} {args.batch / m:10.1f} {args.batch / t:10.1f} {m / t:11.2f}")
        rows.append(f"{'    raw ms':30s} {' '.join(f'{v * 1e3:.0f}' for v in ours_t)}  |  {' '.join(f'{v * 1e3:.0f}' for v in theirs_t)}")
        print("\n".join(rows[-2:]), flush=True)
    del ours, theirs
    (step_m, mem_m), (step_t, mem_t) = (alone(framework, args.batch, args.steps, args.preset, args.processes)
                                        for framework in ("minigrad", "torch"))
    rows.append(f"{'each alone in a fresh process':30s}")
    rows.append(f"{'  training step img/s':30s} {args.batch / step_m:10.1f} {args.batch / step_t:10.1f} {step_m / step_t:11.2f}")
    rows.append(f"{'  peak RSS MiB (training)':30s} {mem_m:10.0f} {mem_t:10.0f} {mem_m / mem_t:11.2f}")
    print("\n".join(rows[-3:]) + "\n", flush=True)
    lines += rows
    if args.preset == "full":    # bench_layers' shapes are the full network's
        lines += ["", f"layer by layer (forward + backward), batch {args.batch}, median of {args.steps}"]
        lines += layer_table(args.batch, args.steps)
    if args.save:
        Path(args.save).write_text(" ".join(sys.argv) + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
