"""Op infos of group_norm split in two (chunkc/ir/ops/norm.py): group_norm_moments and
group_norm_apply, against torch (float64 moments; F.group_norm for their application)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from chunkc import ops as O
from opdb import L, OpInfo, S, T, rnd, to_numpy


def _moments(x: np.ndarray, groups: int) -> np.ndarray:
    g = T(x).double().reshape(x.shape[0], groups, -1)
    return torch.stack((g.mean(-1), (g * g).mean(-1)), dim=-1).numpy()


def _moments_samples(rng):
    return [S(rnd(rng, (2, 6, 5)), num_groups=3), S(rnd(rng, (2, 4, 3, 3), lo=1.0, hi=3.0), num_groups=2),
            S(rnd(rng, (1, 4, 6), "float64"), num_groups=4)]


def _moments_ref(x, num_groups):
    return _moments(x, num_groups)


def _apply_samples(rng):
    x1, x2 = rnd(rng, (2, 6, 5)), rnd(rng, (2, 4, 3, 3), lo=1.0, hi=3.0)
    return [S(x1, _moments(x1, 3), rnd(rng, (6,)), rnd(rng, (6,)), num_groups=3),
            S(x2, _moments(x2, 2), num_groups=2, eps=1e-3)]


def _apply_ref(x, moments, weight=None, bias=None, num_groups=1, eps=1e-5):
    return to_numpy(F.group_norm(T(x), num_groups, None if weight is None else T(weight),
                                 None if bias is None else T(bias), eps))


def _split_graph(s):
    """group_norm as moments + apply, with and without the affine inputs."""
    x = s.inp("f32", (2, 6, L))
    rng = np.random.default_rng(3)
    w6, b6 = s.const(rng.uniform(0.5, 1.5, 6).astype(np.float32), "w6"), s.const(rng.standard_normal(6).astype(np.float32), "b6")
    m3, m2 = O.group_norm_moments(x, num_groups=3), O.group_norm_moments(x, num_groups=2)
    return m3, O.group_norm_apply(x, m3, w6, b6, num_groups=3), O.group_norm_apply(x, m2, num_groups=2)


OPINFOS = [OpInfo("group_norm_moments", _moments_samples, _moments_ref,
                  tol={"float64": (1e-6, 1e-6)}, graphs=[_split_graph]),
           OpInfo("group_norm_apply", _apply_samples, _apply_ref, tol={"float32": (1e-5, 1e-5)}, graphs=[_split_graph])]
