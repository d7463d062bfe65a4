"""from_torch without run_decompositions: when every exported op has a converter and none
mutates, the exported program is imported as it is; otherwise (or when a converter gives up)
it is decomposed first.  Either way the graph computes what the module does."""

from __future__ import annotations

import numpy as np
import torch

import chunkc
from frontends.pytorch.export import decompose, export_program
from frontends.pytorch.importer import import_program, importable_as_exported


class Masks(torch.nn.Module):
    """reshape (its 'shape' argument), & on bool tensors, diff: pre-decomposition spellings."""

    def forward(self, x):
        pos = torch.arange(x.shape[1])
        step = torch.diff(pos, prepend=pos[:1] - 1)
        mask = (pos[None, :] <= pos[:, None]) & (step[None, :] == 1)
        return torch.where(mask, x.reshape(x.shape[1], -1)[:, :1], 0.0)


class InPlace(torch.nn.Module):
    def forward(self, x):
        y = x * 2
        y += 1  # an in-place op: only the decomposition functionalizes it
        return y


def _export(module, x):
    dim = torch.export.Dim("L", min=2, max=64)
    return export_program(module, (x,), None, ({1: dim},))


def test_fast_path_matches_the_decomposed_import():
    x = torch.randn(1, 7, 3)
    ep = _export(Masks(), x)
    assert importable_as_exported(ep)
    fast, slow = import_program(ep), import_program(decompose(ep, "Masks"))
    y = torch.randn(1, 9, 3)
    for g in (fast, slow):
        np.testing.assert_allclose(chunkc.compile(g)(y).numpy(), Masks()(y).numpy())
    assert not any(n.op.name == "opaque" for n in fast.nodes)


def test_mutating_programs_are_decomposed_first():
    x = torch.randn(1, 5, 3)
    assert not importable_as_exported(_export(InPlace(), x))
    g = chunkc.from_torch(InPlace(), (x,), dynamic_shapes=({1: torch.export.Dim("L", min=2, max=64)},))
    y = torch.randn(1, 8, 3)
    np.testing.assert_allclose(chunkc.compile(g)(y).numpy(), (y * 2 + 1).numpy(), rtol=1e-6)
