"""Suite-wide settings: the hypothesis profile (no deadline: sympy's first calls are slow)."""

import strategies  # noqa: F401  (registers and loads the "chunkc" hypothesis profile)
