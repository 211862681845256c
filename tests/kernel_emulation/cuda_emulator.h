// Test-only: compile minigrad's CUDA kernels as ordinary C++ and run them on the CPU.
//
// The kernels in kernels/*.cu are element-wise (no shared memory, no barriers), so a grid can run one
// thread after another: launch() sets blockIdx/threadIdx for every thread of the grid in turn and calls
// the kernel.  That checks the indexing (the usual source of kernel bugs) on a machine without a GPU.
#pragma once
#include <algorithm>
#include <cmath>

using std::isnan;
using std::max;
using std::min;
using std::pow;

#define __global__
#define __device__

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

static dim3 blockIdx, threadIdx, blockDim, gridDim;

template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    gridDim = grid;
    blockDim = block;
    for (blockIdx.z = 0; blockIdx.z < grid.z; ++blockIdx.z)
        for (blockIdx.y = 0; blockIdx.y < grid.y; ++blockIdx.y)
            for (blockIdx.x = 0; blockIdx.x < grid.x; ++blockIdx.x)
                for (threadIdx.z = 0; threadIdx.z < block.z; ++threadIdx.z)
                    for (threadIdx.y = 0; threadIdx.y < block.y; ++threadIdx.y)
                        for (threadIdx.x = 0; threadIdx.x < block.x; ++threadIdx.x)
                            kernel(args...);
}
