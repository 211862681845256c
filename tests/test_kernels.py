"""The CUDA kernels in kernels/*.cu, checked where there is no GPU.

1. Every .cu compiles with nvcc to PTX for sm_80 and sm_90 with warnings as errors (when nvcc is here).
2. The same sources, compiled as C++ with tests/kernel_emulation/cuda_emulator.h (every thread of the
   grid run in turn), are compared with the NumPy backend on hypothesis-drawn shapes: odd sizes,
   padding, stride, every LRN size, and small odd grids so that the grid-stride loops are exercised.
3. The sources ship in the wheel, for a non-editable install.
On a GPU the marked tests compare CuPy's path (minigrad/backend/cuda.py) with the NumPy one.
"""
import ctypes
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minigrad as mg
from minigrad.backend import cpu
from support import array, seeds

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "kernels").glob("*.cu"))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_kernel_compiles_with_nvcc_without_warnings(source, arch, tmp_path):
    result = subprocess.run(["nvcc", "--ptx", f"-arch={arch}", "-std=c++17", "--Werror", "all-warnings",
                             "-o", str(tmp_path / "out.ptx"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0 and "warning" not in result.stderr.lower(), result.stderr
    entries = (tmp_path / "out.ptx").read_text().count(".entry")
    assert entries >= 4, "each file instantiates its kernels for float and double"


# ----- the emulator ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def emulated(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler")
    library = tmp_path_factory.mktemp("emulator") / "kernels.so"
    subprocess.run([compiler, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Werror", "-o", str(library),
                    str(ROOT / "tests" / "kernel_emulation" / "kernels.cpp")], check=True)
    return ctypes.CDLL(str(library))


def run(library, name, grid, *args):
    """Call an emulated kernel: arrays by pointer, Python ints as int, floats as the arrays' type."""
    arrays = [a for a in args if isinstance(a, np.ndarray) and a.dtype != np.int32]
    real = ctypes.c_double if arrays[0].dtype == np.float64 else ctypes.c_float
    converted = [ctypes.c_int(grid[0]), ctypes.c_int(grid[1])]
    for a in args:
        if isinstance(a, np.ndarray):
            assert a.flags.c_contiguous
            converted.append(a.ctypes.data_as(ctypes.c_void_p))
        elif isinstance(a, int):
            converted.append(ctypes.c_int(a))
        else:
            converted.append(real(a))
    suffix = "f64" if arrays[0].dtype == np.float64 else "f32"
    getattr(library, f"{name}_{suffix}")(*converted)


grids = st.tuples(st.integers(1, 5), st.integers(1, 64))   # (blocks, threads): usually far fewer than the work


def poisoned(shape, dtype=np.float64):
    """An output buffer full of NaN, so that an element the kernel forgets to write shows up."""
    return np.full(shape, np.nan, dtype=dtype)


@st.composite
def window_geometry(draw, max_kernel=5):
    kh, kw = draw(st.integers(1, max_kernel)), draw(st.integers(1, max_kernel))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
    h = draw(st.integers(max(1, kh - 2 * padding[0]), 11))
    w = draw(st.integers(max(1, kw - 2 * padding[1]), 11))
    x_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), h, w)
    out_hw = tuple((s + 2 * p - k) // st_ + 1 for s, k, st_, p in zip((h, w), (kh, kw), stride, padding))
    return x_shape, (kh, kw), stride, padding, out_hw


def geometry_args(x_shape, kernel, stride, padding, out_hw):
    return [*x_shape, *kernel, *stride, *padding, *out_hw]


@given(geometry=window_geometry(max_kernel=7), grid=grids, seed=seeds)
def test_im2col_and_col2im_match_numpy(emulated, geometry, grid, seed):
    x_shape, kernel, stride, padding, out_hw = geometry
    x = array(seed, x_shape)
    expected = cpu.im2col(x, kernel, stride, padding)
    cols = poisoned(expected.shape)
    run(emulated, "im2col", grid, x, cols, *geometry_args(*geometry))
    np.testing.assert_array_equal(cols, expected)
    dcols = array(seed + 1, expected.shape)
    dx = poisoned(x_shape)
    run(emulated, "col2im", grid, dcols, dx, *geometry_args(*geometry))
    np.testing.assert_allclose(dx, cpu.col2im(dcols, x_shape, kernel, stride, padding), rtol=1e-12, atol=1e-12)


@given(geometry=window_geometry(), grid=grids, seed=seeds)
def test_max_pool_matches_numpy(emulated, geometry, grid, seed):
    x_shape, kernel, stride, padding, out_hw = geometry
    x = array(seed, x_shape, "distinct")
    y_expected, argmax_expected = cpu.max_pool_forward(x, kernel, stride, padding, out_hw)
    y, argmax = poisoned(y_expected.shape), np.full(y_expected.shape, -7, dtype=np.int32)
    run(emulated, "max_pool_forward", grid, x, y, argmax, *geometry_args(*geometry))
    np.testing.assert_array_equal(y, y_expected)
    np.testing.assert_array_equal(argmax, argmax_expected)
    gy = array(seed + 1, y.shape)
    dx = poisoned(x_shape)
    run(emulated, "max_pool_backward", grid, gy, argmax, dx, *geometry_args(*geometry))
    np.testing.assert_allclose(dx, cpu.max_pool_backward(gy, argmax_expected, x_shape, kernel, stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_max_pool_ties_go_first_and_nan_wins(emulated):
    x = np.array([[[[5.0, 5.0, 1.0], [5.0, np.nan, 2.0], [0.0, 3.0, 4.0]]]])
    y, argmax = poisoned((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int32)
    run(emulated, "max_pool_forward", (1, 4), x, y, argmax, 1, 1, 3, 3, 2, 2, 1, 1, 0, 0, 2, 2)
    assert np.isnan(y).all()                   # every 2×2 window holds the NaN
    ties = np.array([[[[5.0, 5.0], [5.0, 1.0]]]])
    y1, a1 = poisoned((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int32)
    run(emulated, "max_pool_forward", (1, 1), ties, y1, a1, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1)
    assert y1.item() == 5.0 and a1.item() == 0
    # the CPU agrees: the arg-max of a NaN window is its first NaN
    y_cpu, a_cpu = cpu.max_pool_forward(x, (2, 2), (1, 1), (0, 0), (2, 2))
    np.testing.assert_array_equal(a_cpu, argmax)


@settings(max_examples=150)
@given(size=st.integers(1, 9), channels=st.integers(1, 12), n=st.integers(1, 2), hw=st.integers(1, 5),
       alpha=st.sampled_from([1e-4, 1.0]), beta=st.sampled_from([0.5, 0.75]), k=st.sampled_from([1.0, 2.0]),
       grid=grids, seed=seeds)
def test_lrn_forward_and_backward_match_numpy(emulated, size, channels, n, hw, alpha, beta, k, grid, seed):
    a = array(seed, (n, channels, hw, hw)) * 2
    b_expected, s_expected = cpu.lrn_forward(a, size, alpha, beta, k)
    b, s = poisoned(a.shape), poisoned(a.shape)
    run(emulated, "lrn_forward", grid, a, b, s, n, channels, hw * hw, size // 2, (size - 1) // 2, alpha, beta, k)
    np.testing.assert_allclose(s, s_expected, rtol=1e-12)
    np.testing.assert_allclose(b, b_expected, rtol=1e-12, atol=1e-15)
    g = array(seed + 1, a.shape)
    da = poisoned(a.shape)
    run(emulated, "lrn_backward", grid, a, s, g, da, n, channels, hw * hw, size // 2, (size - 1) // 2, alpha, beta)
    np.testing.assert_allclose(da, cpu.lrn_backward(a, s_expected, g, size, alpha, beta), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha, k", [(1e-4, 2.0), (1.0, 1.0), (1.0, 1e-3)])
def test_float32_running_sums_stay_accurate_after_a_large_channel(emulated, alpha, k):
    # One channel of 300 among values of ~0.05: once it leaves the window, a float32 running sum
    # would keep its rounding error (~1e-5), far above what remains; s could even turn negative.
    a = (np.random.default_rng(0).normal(0, 0.05, (2, 96, 3, 3))).astype(np.float32)
    a[:, 0] = 300.0
    b_expected, s_expected = cpu.lrn_forward(a.astype(np.float64), 5, alpha, 0.75, k)
    b, s = poisoned(a.shape, np.float32), poisoned(a.shape, np.float32)
    run(emulated, "lrn_forward", (7, 32), a, b, s, 2, 96, 9, 2, 2, alpha, 0.75, k)
    np.testing.assert_allclose(s, s_expected, rtol=1e-5)
    np.testing.assert_allclose(b, b_expected, rtol=1e-5, atol=1e-7)
    g = np.random.default_rng(1).standard_normal(a.shape).astype(np.float32)
    da = poisoned(a.shape, np.float32)
    run(emulated, "lrn_backward", (7, 32), a, s, g, da, 2, 96, 9, 2, 2, alpha, 0.75)
    expected = cpu.lrn_backward(a.astype(np.float64), s_expected, g.astype(np.float64), 5, alpha, 0.75)
    np.testing.assert_allclose(da, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


# ----- packaging ------------------------------------------------------------------------------------
def test_the_wheel_ships_the_kernel_sources(tmp_path):
    pytest.importorskip("setuptools")  # the build backend; --no-build-isolation uses this environment's
    source = tmp_path / "src"          # build from a copy: pip wheel leaves build/ in the tree it builds
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", ".hypothesis",
                                                                "runs", "__pycache__", ".pytest_cache"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("minigrad-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for source in SOURCES:
        assert f"minigrad/kernels/{source.name}" in names
    assert not any(name.startswith("kernels/") for name in names)      # no top-level "kernels" package


# ----- on a GPU: CuPy's path against NumPy's --------------------------------------------------------
@pytest.mark.cuda
@given(geometry=window_geometry(max_kernel=7), seed=seeds)
@settings(max_examples=40)
def test_cuda_primitives_match_numpy(geometry, seed):
    from minigrad.backend import cuda
    cp = cuda.cupy()
    x_shape, kernel, stride, padding, out_hw = geometry
    x = array(seed, x_shape, "distinct")
    np.testing.assert_array_equal(cp.asnumpy(cuda.im2col(cp.asarray(x), kernel, stride, padding)),
                                  cpu.im2col(x, kernel, stride, padding))
    y, argmax = cuda.max_pool_forward(cp.asarray(x), kernel, stride, padding, out_hw)
    y_expected, argmax_expected = cpu.max_pool_forward(x, kernel, stride, padding, out_hw)
    np.testing.assert_array_equal(cp.asnumpy(y), y_expected)
    np.testing.assert_array_equal(cp.asnumpy(argmax), argmax_expected)
    a = array(seed, x_shape) * 2
    b, s = cuda.lrn_forward(cp.asarray(a), 5, 1.0, 0.75, 1.0)
    np.testing.assert_allclose(cp.asnumpy(b), cpu.lrn_forward(a, 5, 1.0, 0.75, 1.0)[0], rtol=1e-12)


@pytest.mark.cuda
def test_alexnet_on_the_gpu_equals_the_cpu():
    from models.alexnet import AlexNet
    mg.manual_seed(0)
    model = AlexNet(dropout=0.0)
    images = mg.randn(2, 3, 227, 227)
    loss = mg.functional.cross_entropy(model(images), [1, 2])
    loss.backward()
    cpu_grads = {name: p.grad.numpy() for name, p in model.named_parameters()}
    model.zero_grad()
    model.to("cuda")
    gpu_loss = mg.functional.cross_entropy(model(images.to("cuda")), [1, 2])
    gpu_loss.backward()
    assert gpu_loss.item() == pytest.approx(loss.item(), rel=1e-4)
    for name, p in model.named_parameters():
        scale = np.abs(cpu_grads[name]).max()
        np.testing.assert_allclose(p.grad.numpy(), cpu_grads[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)


# ----- minigrad/backend/cuda.py itself, with CuPy played by NumPy and the GPU by the emulator -----------
class EmulatedRawModule:
    """Stands in for cupy.RawModule: get_function("im2col<float>") launches the emulated im2col_f32."""

    library = None

    def __init__(self, code, options=(), name_expressions=()):
        for kernel in ("im2col", "col2im", "lrn_forward", "lrn_backward", "max_pool_forward", "max_pool_backward"):
            assert f"template __global__ void {kernel}<T>" in code or f"void {kernel}<T>" in code, kernel
        self.names = set(name_expressions)

    def get_function(self, name):
        assert name in self.names, f"{name} was not compiled (name_expressions: {sorted(self.names)})"
        kernel, kind = name[:-1].split("<")
        function = getattr(self.library, f"{kernel}_{'f32' if kind == 'float' else 'f64'}")

        def launch(grid, block, args):
            converted = [ctypes.c_int(grid[0]), ctypes.c_int(block[0])]
            for a in args:
                if isinstance(a, np.ndarray):
                    assert a.flags.c_contiguous, f"{name}: a kernel got a non-contiguous array"
                    converted.append(a.ctypes.data_as(ctypes.c_void_p))
                elif isinstance(a, np.int32):
                    converted.append(ctypes.c_int(int(a)))
                elif isinstance(a, np.float32):
                    converted.append(ctypes.c_float(float(a)))
                elif isinstance(a, np.float64):
                    converted.append(ctypes.c_double(float(a)))
                else:
                    raise TypeError(f"{name}: argument {a!r} of type {type(a).__name__} would not reach a kernel "
                                    "with a fixed C type (pass NumPy scalars)")
            function(*converted)
        return launch


@pytest.fixture
def emulated_cuda(emulated, monkeypatch):
    """minigrad.backend.cuda with a fake 'cupy' module: NumPy arrays, kernels run by the emulator."""
    import contextlib
    import types
    from minigrad.backend import cuda
    EmulatedRawModule.library = emulated
    fake = types.SimpleNamespace(
        empty=np.empty, ascontiguousarray=np.ascontiguousarray, asnumpy=np.asarray,
        float32=np.float32, float64=np.float64, int32=np.int32, RawModule=EmulatedRawModule,
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1, getDevice=lambda: 0),
                                   Device=lambda index: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    cuda.cupy.cache_clear()
    cuda._module.cache_clear()
    yield cuda
    cuda.cupy.cache_clear()
    cuda._module.cache_clear()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])   # one fake for all examples
@given(geometry=window_geometry(), seed=seeds)
def test_cuda_backend_wrappers_match_numpy(emulated_cuda, dtype, geometry, seed):
    cuda = emulated_cuda
    x_shape, kernel, stride, padding, out_hw = geometry
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    x = array(seed, x_shape, "distinct").astype(dtype)
    cols = cuda.im2col(x, kernel, stride, padding)
    np.testing.assert_array_equal(cols, cpu.im2col(x, kernel, stride, padding))
    np.testing.assert_allclose(cuda.col2im(cols, x_shape, kernel, stride, padding),
                               cpu.col2im(cols, x_shape, kernel, stride, padding), **tolerance)
    y, argmax = cuda.max_pool_forward(x, kernel, stride, padding, out_hw)
    y_cpu, argmax_cpu = cpu.max_pool_forward(x, kernel, stride, padding, out_hw)
    np.testing.assert_array_equal(y, y_cpu)
    np.testing.assert_array_equal(argmax, argmax_cpu)
    gy = array(seed + 1, y.shape).astype(dtype)
    np.testing.assert_allclose(cuda.max_pool_backward(gy, argmax, x_shape, kernel, stride, padding),
                               cpu.max_pool_backward(gy, argmax_cpu, x_shape, kernel, stride, padding), **tolerance)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kernel, stride, padding, out_hw, out_channels", [
    ((3, 2), (2, 1), (1, 0), (4, 5), 6),      # the CPU's ∂x by col2im, as the GPU's
    ((3, 3), (1, 1), (1, 1), (7, 6), 4)])     # the CPU's ∂x a kernel row at a time: another algorithm
def test_cuda_convolution_routes_match_numpy(emulated_cuda, groups, kernel, stride, padding, out_hw, out_channels):
    """cuda.conv_output, conv_input_grad and conv_weight_grad (batched) against cpu's (blocks of images)."""
    cuda = emulated_cuda
    x = array(0, (3, 4, 7, 6))
    w_g = array(1, (groups, out_channels // groups, 4 // groups * kernel[0] * kernel[1]))
    np.testing.assert_allclose(cuda.conv_output(x, w_g, kernel, stride, padding, out_hw),
                               cpu.conv_output(x, w_g, kernel, stride, padding, out_hw), rtol=1e-12, atol=1e-12)
    bias = array(3, (out_channels,))
    np.testing.assert_allclose(cuda.conv_output(x, w_g, kernel, stride, padding, out_hw, bias),
                               cpu.conv_output(x, w_g, kernel, stride, padding, out_hw) + bias.reshape(-1, 1, 1),
                               rtol=1e-12, atol=1e-12)
    gy = array(2, (3, out_channels, *out_hw))
    np.testing.assert_allclose(cuda.conv_input_grad(gy, w_g, x.shape, kernel, stride, padding),
                               cpu.conv_input_grad(gy, w_g, x.shape, kernel, stride, padding), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cuda.conv_weight_grad(x, gy, groups, kernel, stride, padding),
                               cpu.conv_weight_grad(x, gy, groups, kernel, stride, padding), rtol=1e-12, atol=1e-12)


def test_cuda_lrn_wrappers_accept_non_contiguous_inputs(emulated_cuda):
    cuda = emulated_cuda
    base = array(0, (2, 9, 5, 4)) * 2
    for a in (base.transpose(0, 1, 3, 2), base[:, :6]):           # transposed, and one group's channels
        b, s = cuda.lrn_forward(a, 4, 1.0, 0.75, 1.0)
        b_cpu, s_cpu = cpu.lrn_forward(a, 4, 1.0, 0.75, 1.0)
        np.testing.assert_allclose(b, b_cpu, rtol=1e-12)
        g = np.ascontiguousarray(array(1, a.shape)[..., ::-1])[..., ::-1]   # a reversed view: not contiguous
        np.testing.assert_allclose(cuda.lrn_backward(a, s_cpu, g, 4, 1.0, 0.75),
                                   cpu.lrn_backward(a, s_cpu, g, 4, 1.0, 0.75), rtol=1e-10, atol=1e-12)
