// Max-pooling with arg-max (forward) and its gradient as a gather (backward).
//
// argmax holds, for each output, the window-local offset i*kw + j of its maximum: the first in
// row-major order on ties (only a strictly larger value takes over), and the first NaN if there is
// one (the output is then NaN, as in PyTorch).  Padding never wins: it is skipped, not read as −inf.

// Forward — thread mapping: one thread per output (n, c, oy, ox), in y's memory order (writes coalesced);
// it scans its kh×kw window.  Memory passes: y and argmax written once; x read about (kh/sh)·(kw/sw)
// times (overlapping windows share pixels through the cache).
template <typename T>
__global__ void max_pool_forward(const T* __restrict__ x, T* __restrict__ y, int* __restrict__ argmax,
                                 int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                                 int oH, int oW) {
    const long long total = (long long)N * C * oH * oW;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)blockDim.x * gridDim.x) {
        long long r = t;
        const int ox = r % oW; r /= oW;
        const int oy = r % oH;
        const long long plane = (r / oH) * H * W;            // x[n][c]
        T best = T(0);
        int best_offset = -1;
        for (int i = 0; i < kh; ++i) {
            const int yy = oy * sh - ph + i;
            if (yy < 0 || yy >= H) continue;
            for (int j = 0; j < kw; ++j) {
                const int xx = ox * sw - pw + j;
                if (xx < 0 || xx >= W) continue;
                const T v = x[plane + (long long)yy * W + xx];
                if (best_offset < 0 || v > best || (isnan(v) && !isnan(best))) {
                    best = v;
                    best_offset = i * kw + j;
                }
            }
        }
        y[t] = best;
        argmax[t] = best_offset;
    }
}

// Backward — a gather: one thread per input pixel (n, c, y, x), in dx's memory order.  It visits the
// outputs whose windows contain the pixel (rows oy with oy*sh − ph ≤ y < oy*sh − ph + kh, and the same
// across) and adds ∂L/∂y of those whose arg-max is this pixel.  No atomics.
// Memory passes: dx written once; gy and argmax read about (kh/sh)·(kw/sw) times (cached).
template <typename T>
__global__ void max_pool_backward(const T* __restrict__ gy, const int* __restrict__ argmax, T* __restrict__ dx,
                                  int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw,
                                  int oH, int oW) {
    const long long total = (long long)N * C * H * W;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)blockDim.x * gridDim.x) {
        long long r = t;
        const int xx = r % W; r /= W;
        const int y = r % H;
        const long long plane = (r / H) * oH * oW;           // gy[n][c]
        const int py = y + ph, px = xx + pw;                 // position in the padded image
        const int oy_first = py >= kh ? (py - kh) / sh + 1 : 0, oy_last = min(py / sh, oH - 1);
        const int ox_first = px >= kw ? (px - kw) / sw + 1 : 0, ox_last = min(px / sw, oW - 1);
        T sum = T(0);
        for (int oy = oy_first; oy <= oy_last; ++oy) {
            for (int ox = ox_first; ox <= ox_last; ++ox) {
                const long long at = plane + (long long)oy * oW + ox;
                if (argmax[at] == (py - oy * sh) * kw + (px - ox * sw)) sum += gy[at];
            }
        }
        dx[t] = sum;
    }
}

#define MINIGRAD_MAXPOOL_TYPES(T)                                                                                 \
    template __global__ void max_pool_forward<T>(const T*, T*, int*, int, int, int, int, int, int, int, int, int, \
                                                 int, int, int);                                                  \
    template __global__ void max_pool_backward<T>(const T*, const int*, T*, int, int, int, int, int, int, int,    \
                                                  int, int, int, int, int);
MINIGRAD_MAXPOOL_TYPES(float)
MINIGRAD_MAXPOOL_TYPES(double)
