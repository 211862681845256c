// im2col and col2im for the whole batch (the GPU side of minigrad/backend/cpu.py's im2col/col2im).
//
// Layout, as on the CPU: cols[c][i][j][n][oy][ox] = x_padded[n][c][oy*sh + i][ox*sw + j], i.e. a
// (C*kh*kw) x (N*oH*oW) matrix with one receptive field per column, which conv2d multiplies by the
// weights (g, O/g, C/g*kh*kw) in one batched cuBLAS call.
//
// Every kernel walks its outputs with a grid-stride loop, so any grid size is correct.

// im2col — thread mapping: one thread per element of cols, in cols' memory order (ox fastest), so the
// writes are coalesced; each thread reads one input pixel (or writes 0 in the padding).
// Memory passes: cols written once; x read about (kh/sh)·(kw/sw) times in all (cached), nothing else.
template <typename T>
__global__ void im2col(const T* __restrict__ x, T* __restrict__ cols,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int oH, int oW) {
    const long long total = (long long)C * kh * kw * N * oH * oW;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)blockDim.x * gridDim.x) {
        long long r = t;
        const int ox = r % oW; r /= oW;
        const int oy = r % oH; r /= oH;
        const int n = r % N;   r /= N;
        const int j = r % kw;  r /= kw;
        const int i = r % kh;
        const int c = r / kh;
        const int y = oy * sh - ph + i, xx = ox * sw - pw + j;
        cols[t] = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[(((long long)n * C + c) * H + y) * W + xx] : T(0);
    }
}

// col2im — the adjoint of im2col, as a gather: one thread per input pixel (n, c, y, x), in dx's memory
// order (x fastest, writes coalesced).  The thread adds up every column entry that came from its pixel:
// kernel offsets (i, j) with (y + ph − i) divisible by sh and the output row oy = (y + ph − i)/sh in
// range (and the same across).  No atomics: each output is owned by one thread.
// Memory passes: dx written once; cols read once in all (each entry belongs to exactly one pixel).
template <typename T>
__global__ void col2im(const T* __restrict__ cols, T* __restrict__ dx,
                       int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int oH, int oW) {
    const long long total = (long long)N * C * H * W;
    for (long long t = blockIdx.x * (long long)blockDim.x + threadIdx.x; t < total;
         t += (long long)blockDim.x * gridDim.x) {
        long long r = t;
        const int xx = r % W; r /= W;
        const int y = r % H;  r /= H;
        const int c = r % C;
        const int n = r / C;
        T sum = T(0);
        for (int i = 0; i < kh; ++i) {
            const int ry = y + ph - i;
            if (ry < 0 || ry % sh != 0 || ry / sh >= oH) continue;
            for (int j = 0; j < kw; ++j) {
                const int rx = xx + pw - j;
                if (rx < 0 || rx % sw != 0 || rx / sw >= oW) continue;
                sum += cols[((((long long)c * kh + i) * kw + j) * N + n) * oH * oW + (long long)(ry / sh) * oW + rx / sw];
            }
        }
        dx[t] = sum;
    }
}

#define MINIGRAD_IM2COL_TYPES(T)                                                                             \
    template __global__ void im2col<T>(const T*, T*, int, int, int, int, int, int, int, int, int, int, int, int); \
    template __global__ void col2im<T>(const T*, T*, int, int, int, int, int, int, int, int, int, int, int, int);
MINIGRAD_IM2COL_TYPES(float)
MINIGRAD_IM2COL_TYPES(double)
