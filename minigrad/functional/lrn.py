"""Local response normalization across channels (Krizhevsky et al. 2012, §3.3)."""
from .. import backend
from ..function import Function


class LocalResponseNorm(Function):
    r"""b_i = a_i / (k + α · Σ_{j = max(0, i − n/2)}^{min(C − 1, i + n/2)} a_j²)^β      (per pixel, across channels)

    x: (N, C, H, W) -> y: (N, C, H, W).  The paper uses n = 5, k = 2, α = 1e-4, β = 0.75.
    For even n the window is n//2 channels before i and (n − 1)//2 after (as in PyTorch).

    α multiplies the plain sum, exactly as the paper writes it.  Conventions differ:

        who                              denominator          default k
        paper, Chainer, minigrad         k + α·Σ a²           2
        PyTorch LocalResponseNorm, Caffe k + (α/n)·Σ a²       1
        Krizhevsky's cuda-convnet        k + (α/n)·Σ a²       2 (config: k=2, α=1e-4)

    so ``torch.nn.LocalResponseNorm(n, alpha=α·n, beta=β, k=k)`` equals ``local_response_norm(x, n, α, β, k)``.

    Backward, with s_i = k + α·Σ_{window(i)} a_j²:
        ∂L/∂a_i = g_i · s_i^(−β) − 2αβ · a_i · Σ_{j : i ∈ window(j)} g_j · b_j / s_j
    The last sum runs over the channels j whose window contains i: the window turned around
    (n//2 after i and (n − 1)//2 before), which differs from window(i) when n is even.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, a):
        self.a = a
        # b and the denominator s, saved for backward (the hot primitive: cpu.py / kernels/lrn.cu)
        b, self.s = backend.primitives(a).lrn_forward(a, self.size, self.alpha, self.beta, self.k)
        return b

    def backward(self, g):
        return backend.primitives(g).lrn_backward(self.a, self.s, g, self.size, self.alpha, self.beta)


def local_response_norm(x, size=5, alpha=1e-4, beta=0.75, k=2.0):
    """The paper's LRN (α times the plain sum; PyTorch's equivalent has alpha=α·size).  See ``LocalResponseNorm``."""
    if x.ndim != 4:
        raise ValueError(f"local_response_norm: expected input of shape (N, C, H, W), got {x.shape}")
    if size < 1:
        raise ValueError(f"local_response_norm: size must be ≥ 1, got {size}")
    return LocalResponseNorm(size, alpha, beta, k)(x)
