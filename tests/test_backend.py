"""The NumPy/CuPy seam: device strings, clear errors without a GPU, device mixing, seeding."""
import subprocess
import sys
import types

import numpy as np
import pytest

import minigrad as mg
from minigrad import backend


def test_device_strings():
    assert backend.parse_device("cpu") == backend.Device("cpu")
    assert backend.parse_device(" CPU ") == backend.Device("cpu")
    assert backend.parse_device("cuda:1") == backend.Device("cuda", 1)
    assert str(backend.Device("cuda", 1)) == "cuda:1"


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cpu:0", "cuda:-1"])
def test_unknown_device_strings_are_refused(bad):
    with pytest.raises(ValueError, match=f"unknown device '{bad}': expected 'cpu', 'cuda' or 'cuda:N'"):
        backend.parse_device(bad)


def test_import_does_not_import_cupy():
    code = "import sys, minigrad; print('cupy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_xp_is_numpy_for_host_arrays():
    assert backend.xp(np.zeros(2)) is np
    assert backend.primitives(np.zeros(2)) is backend.cpu


@pytest.mark.skipif(backend.cuda_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match="minigrad: (device 'cuda' needs CuPy, which is not installed.*pip install|CuPy is installed but)"):
        mg.tensor([1.0], device="cuda")


@pytest.fixture
def fake_cupy(monkeypatch):
    """A stand-in CuPy module whose runtime reports a given number of GPUs."""
    def install(device_count=0, error=None):
        def get_count():
            if error:
                raise error
            return device_count
        runtime = types.SimpleNamespace(getDeviceCount=get_count)
        monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))
        backend.cuda_backend().cupy.cache_clear()
    yield install
    backend.cuda_backend().cupy.cache_clear()


def test_cupy_without_a_gpu_is_one_clear_error(fake_cupy):
    fake_cupy(device_count=0)
    with pytest.raises(RuntimeError, match="minigrad: CuPy is installed but finds no CUDA GPU on this machine; use device='cpu'"):
        mg.zeros(2, device="cuda")
    assert not backend.cuda_available()


def test_cupy_with_a_broken_driver_is_one_clear_error(fake_cupy):
    fake_cupy(error=OSError("libcuda.so.1: cannot open shared object file"))
    with pytest.raises(RuntimeError, match="CuPy is installed but cannot reach a GPU: libcuda.so.1.*nvidia-smi"):
        mg.zeros(2, device="cuda:0")


def test_mixing_devices_in_one_op_names_both(monkeypatch):
    a, b = mg.tensor([1.0]), mg.tensor([2.0])
    # Pretend b lives on a GPU: the check compares devices, whatever holds the data.
    real = backend.device_of
    monkeypatch.setattr(backend, "device_of", lambda arr: backend.Device("cuda", 0) if arr is b.data else real(arr))
    with pytest.raises(RuntimeError, match=r"Add: inputs are on different devices \(cpu and cuda:0\)"):
        a + b


def test_manual_seed_makes_random_numbers_repeat():
    mg.manual_seed(123)
    first = mg.randn(4, 3).numpy()
    mg.manual_seed(123)
    np.testing.assert_array_equal(first, mg.randn(4, 3).numpy())
    mg.manual_seed(124)
    assert not np.array_equal(first, mg.randn(4, 3).numpy())


def test_creation_helpers():
    assert mg.zeros(2, 3).shape == (2, 3) and mg.ones((4,)).numpy().sum() == 4
    assert mg.randn(3, dtype=mg.float64).dtype == np.float64
    assert mg.zeros(2, requires_grad=True).requires_grad


@pytest.mark.cuda
def test_tensors_move_between_cpu_and_gpu_with_gradients():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = x.to("cuda")
    assert str(y.device) == "cuda:0" and backend.xp(y.data) is not np
    (y * y).sum().backward()
    assert str(x.grad.device) == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    with pytest.raises(RuntimeError, match=r"Add: inputs are on different devices \(cpu and cuda:0\)"):
        x + y
