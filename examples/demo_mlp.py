"""A first look at minigrad: train a two-layer network on generated data and watch the loss fall.

The data: three interleaved spirals in the plane (a classic that no straight line separates).
The model: 2 -> 64 -> 3 with ReLU, written with bare tensors so every step is visible.
Run: python examples/demo_mlp.py  [--steps 300] [--lr 1.0] [--seed 0]
"""
import argparse
import time

import numpy as np

import minigrad as mg
import minigrad.functional as F


def spirals(points_per_class: int, classes: int, rng: np.random.Generator):
    """Points (x, y) on `classes` noisy spiral arms; the label is the arm."""
    radius = np.tile(np.linspace(0.05, 1.0, points_per_class), classes)
    label = np.repeat(np.arange(classes), points_per_class)
    angle = label * 2 * np.pi / classes + radius * 4 + rng.normal(0, 0.2, radius.size)
    points = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    return points.astype(np.float32), label


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="full-batch gradient steps (default 300)")
    parser.add_argument("--lr", type=float, default=1.0, help="learning rate (default 1.0)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden units (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed for data and weights (default 0)")
    args = parser.parse_args()

    mg.manual_seed(args.seed)
    x_np, y_np = spirals(200, 3, np.random.default_rng(args.seed))
    x, y = mg.tensor(x_np), mg.tensor(y_np)
    # He initialisation: std sqrt(2 / fan_in) keeps ReLU activations at a steady scale.
    w1 = (mg.randn(2, args.hidden) * np.sqrt(2 / 2)).requires_grad_()
    b1 = mg.zeros(args.hidden, requires_grad=True)
    w2 = (mg.randn(args.hidden, 3) * np.sqrt(2 / args.hidden)).requires_grad_()
    b2 = mg.zeros(3, requires_grad=True)
    params = [w1, b1, w2, b2]

    print(f"Training a 2-{args.hidden}-3 MLP on {len(y_np)} spiral points (3 classes; chance = 33%)")
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = F.relu(x @ w1 + b1) @ w2 + b2
        loss = F.cross_entropy(logits, y)
        for p in params:
            p.grad = None
        loss.backward()
        with mg.no_grad():
            for p in params:
                p.data -= args.lr * p.grad.data   # plain gradient descent
        if step % (args.steps // 10) == 0:
            accuracy = (logits.argmax(axis=1).numpy() == y_np).mean()
            print(f"step {step:4d}   loss {loss.item():.4f}   accuracy {accuracy:6.1%}")
    print(f"done in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
