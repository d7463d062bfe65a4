"""Suite-wide settings: the hypothesis profile (no deadline: sympy's first calls are slow), and
an empty kernel-table cache, so that the cost model is the built-in constants whatever tables
this machine has measured (tests that need a table make their own)."""

import os
import tempfile

import strategies  # noqa: F401  (registers and loads the "chunkc" hypothesis profile)

os.environ["CHUNKC_CACHE_DIR"] = tempfile.mkdtemp(prefix="chunkc-test-cache-")
