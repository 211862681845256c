// Local response normalization across channels (Krizhevsky et al. 2012, §3.3), forward and backward.
//
//   s_c = k + α · Σ_{j = c − before}^{c + after} a_j²      (terms outside 0..C−1 left out)
//   b_c = a_c · s_c^(−β)
//   ∂L/∂a_i = g_i · s_i^(−β) − 2αβ · a_i · Σ_{j = i − after}^{i + before} g_j · b_j / s_j
// before = n/2 and after = (n − 1)/2 (integer division); the backward window is the forward one turned
// around, which matters for even n.
//
// Thread mapping (both kernels): one thread per (n, y, x) column, walking down the C channels while
// keeping a running sum over the window: add the term entering at the bottom, drop the one leaving at
// the top.  Consecutive threads take consecutive x, so every load and store is coalesced.
// The running sum is kept in double even for float data: after a large value leaves the window, a float
// sum would keep its rounding error, which can exceed the small values that remain (and make s < 0).
// Memory passes: forward reads a three times (entering the window, leaving it, and at its own channel),
// writes b and s once; backward reads a, s, g three times each and writes da once.

template <typename T>
__global__ void lrn_forward(const T* __restrict__ a, T* __restrict__ b, T* __restrict__ s,
                            int N, int C, int HW, int before, int after, T alpha, T beta, T k) {
    const long long columns = (long long)N * HW;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < columns;
         t += (long long)blockDim.x * gridDim.x) {
        const long long base = (t / HW) * C * HW + t % HW;   // a[n][0][y][x]
        double window = 0.0;
        for (int j = 0; j < after && j < C; ++j) {           // the window of channel 0, less its last term
            const double v = a[base + (long long)j * HW];
            window += v * v;
        }
        for (int c = 0; c < C; ++c) {
            const int enter = c + after, leave = c - before - 1;
            if (enter < C) { const double v = a[base + (long long)enter * HW]; window += v * v; }
            if (leave >= 0) { const double v = a[base + (long long)leave * HW]; window -= v * v; }
            const long long at = base + (long long)c * HW;
            const T denominator = k + alpha * T(window);
            s[at] = denominator;
            b[at] = a[at] * pow(denominator, -beta);
        }
    }
}

template <typename T>
__global__ void lrn_backward(const T* __restrict__ a, const T* __restrict__ s, const T* __restrict__ g,
                             T* __restrict__ da, int N, int C, int HW, int before, int after, T alpha, T beta) {
    const long long columns = (long long)N * HW;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < columns;
         t += (long long)blockDim.x * gridDim.x) {
        const long long base = (t / HW) * C * HW + t % HW;
        // term_j = g_j · b_j / s_j = g_j · a_j · s_j^(−β−1); channel i needs the sum over j in [i − after, i + before]
        double window = 0.0;
        for (int j = 0; j < before && j < C; ++j) {
            const long long at = base + (long long)j * HW;
            window += g[at] * a[at] * pow(s[at], -beta - T(1));
        }
        for (int i = 0; i < C; ++i) {
            const int enter = i + before, leave = i - after - 1;
            if (enter < C) { const long long at = base + (long long)enter * HW; window += g[at] * a[at] * pow(s[at], -beta - T(1)); }
            if (leave >= 0) { const long long at = base + (long long)leave * HW; window -= g[at] * a[at] * pow(s[at], -beta - T(1)); }
            const long long at = base + (long long)i * HW;
            da[at] = g[at] * pow(s[at], -beta) - T(2) * alpha * beta * a[at] * T(window);
        }
    }
}

#define MINIGRAD_LRN_TYPES(T)                                                                                     \
    template __global__ void lrn_forward<T>(const T*, T*, T*, int, int, int, int, int, T, T, T);                  \
    template __global__ void lrn_backward<T>(const T*, const T*, const T*, T*, int, int, int, int, int, T, T);
MINIGRAD_LRN_TYPES(float)
MINIGRAD_LRN_TYPES(double)
