// Test-only: the kernels of kernels/*.cu behind extern "C" launchers, for ctypes (tests/test_kernels.py).
#include "cuda_emulator.h"

#include "../../kernels/im2col.cu"
#include "../../kernels/lrn.cu"
#include "../../kernels/maxpool.cu"

#define GEOMETRY int N, int C, int H, int W, int kh, int kw, int sh, int sw, int ph, int pw, int oH, int oW
#define GEOMETRY_ARGS N, C, H, W, kh, kw, sh, sw, ph, pw, oH, oW

#define LAUNCHERS(T, suffix)                                                                                       \
    void im2col_##suffix(int grid, int block, const T* x, T* cols, GEOMETRY) {                                     \
        launch(dim3(grid), dim3(block), im2col<T>, x, cols, GEOMETRY_ARGS);                                        \
    }                                                                                                              \
    void col2im_##suffix(int grid, int block, const T* cols, T* dx, GEOMETRY) {                                    \
        launch(dim3(grid), dim3(block), col2im<T>, cols, dx, GEOMETRY_ARGS);                                       \
    }                                                                                                              \
    void max_pool_forward_##suffix(int grid, int block, const T* x, T* y, int* argmax, GEOMETRY) {                 \
        launch(dim3(grid), dim3(block), max_pool_forward<T>, x, y, argmax, GEOMETRY_ARGS);                         \
    }                                                                                                              \
    void max_pool_backward_##suffix(int grid, int block, const T* gy, const int* argmax, T* dx, GEOMETRY) {        \
        launch(dim3(grid), dim3(block), max_pool_backward<T>, gy, argmax, dx, GEOMETRY_ARGS);                      \
    }                                                                                                              \
    void lrn_forward_##suffix(int grid, int block, const T* a, T* b, T* s, int N, int C, int HW, int before,       \
                              int after, T alpha, T beta, T k) {                                                   \
        launch(dim3(grid), dim3(block), lrn_forward<T>, a, b, s, N, C, HW, before, after, alpha, beta, k);        \
    }                                                                                                              \
    void lrn_backward_##suffix(int grid, int block, const T* a, const T* s, const T* g, T* da, int N, int C,      \
                               int HW, int before, int after, T alpha, T beta) {                                   \
        launch(dim3(grid), dim3(block), lrn_backward<T>, a, s, g, da, N, C, HW, before, after, alpha, beta);      \
    }

extern "C" {
LAUNCHERS(float, f32)
LAUNCHERS(double, f64)
}
