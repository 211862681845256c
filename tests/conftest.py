"""Test configuration: hypothesis profiles, and skipping GPU tests where there is no GPU.

Profiles (choose with HYPOTHESIS_PROFILE=name): "default" (what CI runs), "thorough" (1000 per test instead of 100).
No deadlines: a slow example is not a wrong one, and CI machines vary.
"""
import os

import pytest
from hypothesis import settings

from minigrad import backend

settings.register_profile("default", max_examples=100, deadline=None, print_blob=True)
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_report_header(config):
    try:
        import torch
        oracle = f"PyTorch {torch.__version__} (oracle tests run)"
    except ImportError:
        oracle = "PyTorch absent: oracle tests skip (pip install torch==2.13.0 to run them)"
    gpu = "CUDA GPU found: cuda tests run" if backend.cuda_available() else "no CUDA GPU: cuda tests skip"
    return [f"minigrad: {oracle}; {gpu}; hypothesis profile {settings._current_profile}"]


def pytest_collection_modifyitems(config, items):
    if backend.cuda_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
