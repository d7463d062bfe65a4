"""Suite-wide settings: the hypothesis profile (no deadline: sympy's first calls are slow), an
empty kernel-table cache, so that the cost model is the built-in constants whatever tables
this machine has measured (tests that need a table make their own), and PyTorch's thread count
restored after every test (the CPU flash-attention kernel's buffers are per thread, so the
estimates of attention graphs depend on it: one test that sets it must not move another's floor)."""

import atexit
import os
import shutil
import tempfile

import pytest

import strategies  # noqa: F401  (registers and loads the "chunkc" hypothesis profile)

os.environ["CHUNKC_CACHE_DIR"] = tempfile.mkdtemp(prefix="chunkc-test-cache-")
# Every pytest process (each xdist worker too) makes its own; none may outlive its run.
atexit.register(shutil.rmtree, os.environ["CHUNKC_CACHE_DIR"], ignore_errors=True)


@pytest.fixture(autouse=True)
def _torch_threads_restored():
    try:
        import torch
    except ImportError:  # NumPy-only environments
        yield
        return
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
