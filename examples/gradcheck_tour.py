"""A tour of gradient checking: every layer of AlexNet against central differences, then a planted bug.

    python examples/gradcheck_tour.py

For each layer, mg.gradient_table compares the gradient from backward() ("analytic") with
(L(x + ε) − L(x − ε)) / 2ε ("numeric") for every input element, in float64, and reports the worst.
Then it plants the classic LRN bug, a backward that uses the forward window where it needs the
window turned around, and shows why the tests use α = 1: with the paper's α = 1e-4 the wrong term is
tiny, and a comparison with float32-style tolerances lets it through.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import minigrad as mg  # noqa: E402
import minigrad.functional as F  # noqa: E402
from minigrad.backend import cpu  # noqa: E402
from minigrad.functional.dropout import Dropout  # noqa: E402
from minigrad.functional.lrn import LocalResponseNorm  # noqa: E402
from minigrad.gradcheck import format_table, gradient_table  # noqa: E402


def leaf(rng, *shape, distinct=False):
    if distinct:   # max-pool: all values different, so no tie decides the gradient
        values = rng.permutation(int(np.prod(shape))).reshape(shape) / np.prod(shape) * 4 - 2
    else:
        values = rng.standard_normal(shape)
    return mg.tensor(values, requires_grad=True)


def layers(rng):
    """(name, what it computes, function, inputs): small float64 versions of AlexNet's layers."""
    mask = rng.random((2, 6)) >= 0.5
    targets = np.array([1, 3])
    return [
        ("conv2d", "5×5 kernel, stride 2, padding 2, groups 2",
         lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=2, groups=2),
         [leaf(rng, 2, 4, 7, 7), leaf(rng, 6, 2, 5, 5), leaf(rng, 6)]),
        ("max_pool2d", "3×3 windows, stride 2 (overlapping)", lambda x: F.max_pool2d(x, 3, 2),
         [leaf(rng, 2, 3, 7, 7, distinct=True)]),
        ("local_response_norm", "n=4, α=1, β=0.75, k=1 (a large α, so the window matters)",
         lambda x: F.local_response_norm(x, 4, 1.0, 0.75, 1.0), [leaf(rng, 2, 7, 3, 3)]),
        ("dropout", "p=0.5 with a fixed mask (gradcheck needs the same mask every call)",
         lambda x: Dropout(mask, 2.0)(x), [leaf(rng, 2, 6)]),
        ("relu", "max(x, 0)", F.relu, [mg.tensor(rng.uniform(0.1, 2, (3, 5)) * rng.choice([-1, 1], (3, 5)),
                                                 requires_grad=True)]),
        ("linear", "x Wᵀ + b", F.linear, [leaf(rng, 3, 5), leaf(rng, 4, 5), leaf(rng, 4)]),
        ("cross_entropy", "mean over the batch, from logits", lambda z: F.cross_entropy(z, targets),
         [leaf(rng, 2, 5)]),
    ]


class LRNWithWrongWindow(LocalResponseNorm):
    """The planted bug: backward sums over window(i) instead of {j : i ∈ window(j)}.

    For an odd n the two are the same set; for an even n they are not (n//2 before and (n−1)//2 after,
    against (n−1)//2 before and n//2 after).
    """

    def backward(self, g):
        scale = self.s ** -self.beta
        term = g * self.a * scale / self.s
        wrong = cpu.channel_window_sum(term, self.size // 2, (self.size - 1) // 2)   # should be turned around
        return g * scale - 2 * self.alpha * self.beta * self.a * wrong


def show(name, description, rows, verdict=None):
    verdict = verdict or ("FAIL" if any(r["status"] == "FAIL" for r in rows) else "ok")
    print(f"\n{name} — {description}: {verdict}")
    print("  " + format_table(rows).replace("\n", "\n  "))


def main():
    rng = np.random.default_rng(0)
    print("Gradient check: analytic (from backward) vs numeric ((L(x+ε) − L(x−ε))/2ε, ε = 1e-6), float64.")
    print("An element passes when |analytic − numeric| ≤ 1e-5 + 1e-3·|numeric|; the table shows the worst element.")
    for name, description, fn, inputs in layers(rng):
        show(name, description, gradient_table(fn, inputs))

    print("\n" + "=" * 100)
    print("A planted bug: LRN's backward with the window not turned around (n = 4, so the two windows differ).")
    x = leaf(rng, 2, 7, 3, 3)
    for alpha, k in ((1e-4, 2.0), (1.0, 1.0)):
        buggy = lambda t, alpha=alpha, k=k: LRNWithWrongWindow(4, alpha, 0.75, k)(t)  # noqa: E731
        tight = gradient_table(buggy, [x])                            # gradcheck's tolerances
        loose = gradient_table(buggy, [x], atol=1e-4, rtol=1e-2)      # what a float32 comparison would use
        verdict = lambda rows: "caught" if rows[0]["status"] == "FAIL" else "MISSED"  # noqa: E731
        show(f"buggy LRN, α = {alpha:g}, k = {k:g}", "gradcheck (rtol 1e-3)", tight,
             f"{verdict(tight)}; a float32-style check (rtol 1e-2): {verdict(loose)}")
    print("\nThe wrong term is proportional to α: with the paper's α = 1e-4 it is a fraction of a percent of the "
          "gradient,\nso only a tight float64 check sees it. minigrad's tests run LRN with α = 1, k = 1, where it "
          "cannot hide.")


if __name__ == "__main__":
    main()
