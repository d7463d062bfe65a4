"""Op infos of chunkc/ir/ops/extra_signal.py: dft and stft, against torch.fft."""

from __future__ import annotations

import numpy as np
import torch

from chunkc import ops as O
from opdb import L, OpInfo, S, rnd


def _complex(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x))
    return torch.complex(t[..., 0], t[..., 1]) if x.shape[-1] == 2 else t[..., 0].to(torch.complex64 if x.dtype.itemsize == 4 else torch.complex128)


def _pairs(c: torch.Tensor, dtype) -> np.ndarray:
    return torch.stack([c.real, c.imag], dim=-1).numpy().astype(dtype)


def _dft_samples(rng):
    return [S(rnd(rng, (2, 8, 2)), axis=1, length=8), S(rnd(rng, (3, 10, 1)), axis=1, length=10, onesided=True),
            S(rnd(rng, (4, 6, 2), "float64"), axis=0, length=6, inverse=True),
            S(rnd(rng, (2, 5, 2)), axis=1, length=8, inverse=True, onesided=True),
            S(rnd(rng, (2, 7, 3, 1)), axis=1, length=12)]


def _dft_ref(x, axis, length, inverse=False, onesided=False):
    c = _complex(x)
    if inverse and onesided:
        return torch.fft.irfft(c, n=length, dim=axis).numpy()[..., None].astype(x.dtype)
    y = (torch.fft.ifft if inverse else torch.fft.fft)(c, n=length, dim=axis)
    if onesided and not inverse:
        y = y.narrow(axis, 0, length // 2 + 1)
    return _pairs(y, x.dtype)


def _stft_samples(rng):
    return [S(rnd(rng, (2, 32, 1)), frame_step=4, frame_length=8),
            S(rnd(rng, (1, 30, 2)), rnd(rng, (6,)), frame_step=3, frame_length=6, onesided=False),
            S(rnd(rng, (2, 20, 1), "float64"), rnd(rng, (5,), "float64"), frame_step=5, frame_length=5)]


def _stft_ref(x, window=None, frame_step=1, frame_length=1, onesided=True):
    c = _complex(x)
    frames = c.unfold(1, frame_length, frame_step)  # [batch, frames, frame_length]
    if window is not None:
        frames = frames * torch.from_numpy(window)
    y = torch.fft.fft(frames, n=frame_length, dim=-1)
    if onesided:
        y = y[..., : frame_length // 2 + 1]
    return _pairs(y, x.dtype)


def _dft_graph(s):
    x = s.inp("f32", (2, L, 2), -1, 1)
    return O.dft(x, axis=1, length=L), O.dft(x, axis=1, length=8, onesided=True)


def _stft_graph(s):
    x = s.inp("f32", (2, 4 * L, 1), -1, 1)
    return (O.stft(x, frame_step=2, frame_length=4),)


OPINFOS = [OpInfo("dft", _dft_samples, _dft_ref, tol={"float32": (1e-4, 1e-4)}, graphs=[_dft_graph]),
           OpInfo("stft", _stft_samples, _stft_ref, tol={"float32": (1e-4, 1e-4)}, graphs=[_stft_graph])]
