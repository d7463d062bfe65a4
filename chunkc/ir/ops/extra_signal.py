"""Fourier transforms, for the ONNX importer (DFT, STFT).

Complex values are real tensors whose last axis holds (real, imaginary) pairs, as
in ONNX; a real signal has a last axis of size 1.

* ``dft(x; axis, length, inverse, onesided)``: the discrete Fourier transform of
  ``x`` along ``axis`` (not the last), the signal cut or zero-padded to ``length``.
  Forward: ``onesided`` keeps the ``length//2 + 1`` non-negative frequencies.
  Inverse (normalized by ``1/length``): with ``onesided`` the input is a half
  spectrum and the output the real signal of ``length`` samples (last axis 1).
* ``stft(signal, [window]; frame_step, frame_length, onesided)``: signal
  ``[batch, n, 1|2]``, frames of ``frame_length`` samples every ``frame_step``,
  each multiplied by ``window`` (ones when absent) and transformed:
  ``[batch, (n - frame_length)//frame_step + 1, bins, 2]``.

References compute in complex64 (complex128 for an f64 input), as ONNX's reference does.  The
transform axis mixes; every other axis carries (for stft the batch axis).
"""

from __future__ import annotations

import numpy as np

from ..dims import AxisFlow, AxisSource, DimRecord, MIX
from ..lowering import ON_HOST
from ..registry import OpDef, REQUIRED, register
from ..sizes import Size, floordiv, normalize
from ._common import fail, norm_axis


def _complex(xp, x):
    """``x``'s (real, imaginary) pairs as complex numbers: complex128 for f64, else complex64."""
    dt = np.complex128 if x.dtype.itemsize == 8 else np.complex64
    c = x[..., 0].astype(dt)
    return c + (1j * x[..., 1]).astype(dt) if x.shape[-1] == 2 else c


def _pairs(xp, c, dtype):
    return xp.ascontiguousarray(xp.stack([c.real, c.imag], axis=-1).astype(dtype))


def _check_signal(op: str, x) -> None:
    if not x.dtype.is_floating:
        raise fail(op, f"input must be floating point, got {x}")
    if x.rank < 2 or x.shape[-1] not in (1, 2):
        raise fail(op, f"input must end in an axis of size 1 (real) or 2 (complex), got {x}")


# -- dft -------------------------------------------------------------------------------------------


def dft_bins(length: Size, inverse: bool, onesided: bool) -> Size:
    return normalize(floordiv(length, 2) + 1) if onesided and not inverse else length


def _dft_infer(ins, attrs):
    x = ins[0]
    _check_signal("dft", x)
    axis = norm_axis("dft", attrs["axis"], x.rank)
    if axis == x.rank - 1:
        raise fail("dft", f"axis {attrs['axis']} is the (real, imaginary) axis; transform another one")
    length = attrs["length"]
    if isinstance(length, int) and length < 1:
        raise fail("dft", f"length must be at least 1, got {length}")
    shape = list(x.shape)
    shape[axis] = dft_bins(length, attrs["inverse"], attrs["onesided"])
    shape[-1] = 1 if attrs["inverse"] and attrs["onesided"] else 2
    return (x.with_shape(shape),)


def _dft_dims(ins, attrs, outs) -> DimRecord:
    axis = norm_axis("dft", attrs["axis"], ins[0].rank)
    last = ins[0].rank - 1
    return (tuple(MIX if k in (axis, last) else AxisFlow("carry", (AxisSource(0, k),)) for k in range(ins[0].rank)),)


def _dft_ref(xp, x, axis, length, inverse=False, onesided=False):
    axis = axis % x.ndim
    c = _complex(xp, x)
    if inverse and onesided:
        return xp.ascontiguousarray(xp.fft.irfft(c, n=int(length), axis=axis)[..., None].astype(x.dtype))
    y = (xp.fft.ifft if inverse else xp.fft.fft)(c, n=int(length), axis=axis)
    if onesided and not inverse:
        index = [slice(None)] * y.ndim
        index[axis] = slice(0, int(length) // 2 + 1)
        y = y[tuple(index)]
    return _pairs(xp, y, x.dtype)


def _fft_workspace(ins, attrs, outs) -> Size:
    # the complex copy of the input and the complex result, in elements of the output dtype
    out = outs[0]
    width = 16 if ins[0].dtype.itemsize == 8 else 8
    return normalize((width * ins[0].numel() + width * out.numel()) // out.dtype.itemsize)


register(OpDef(name="dft", infer=_dft_infer, dims=_dft_dims, reference=_dft_ref, workspace=_fft_workspace,
               attrs={"axis": REQUIRED, "length": REQUIRED, "inverse": False, "onesided": False},
               size_attrs=("length",), torch=ON_HOST,  # NumPy's FFT, on the host
               flops=lambda ins, a, outs: normalize(5 * outs[0].numel() * 8),
               doc="dft(x, axis=, length=, inverse=False, onesided=False): the Fourier transform along axis of "
                   "(real, imaginary) pairs in x's last axis. Carries: every axis but `axis` and the last."))


# -- stft ------------------------------------------------------------------------------------------


def _stft_infer(ins, attrs):
    x = ins[0]
    _check_signal("stft", x)
    if x.rank != 3:
        raise fail("stft", f"signal must be [batch, samples, 1|2], got {x}")
    step, frame = attrs["frame_step"], attrs["frame_length"]
    if not isinstance(step, int) or step < 1 or not isinstance(frame, int) or frame < 1:
        raise fail("stft", f"frame_step and frame_length must be positive ints, got {step} and {frame}")
    if len(ins) == 2 and (ins[1].rank != 1 or ins[1].shape[0] != frame):
        raise fail("stft", f"window must be [{frame}], got {ins[1]}")
    frames = normalize(floordiv(normalize(x.shape[1] - frame), step) + 1)
    bins = frame // 2 + 1 if attrs["onesided"] else frame
    return (x.with_shape((x.shape[0], frames, bins, 2)),)


def _stft_dims(ins, attrs, outs) -> DimRecord:
    return ((AxisFlow("carry", (AxisSource(0, 0),)), MIX, MIX, MIX),)


def _stft_ref(xp, x, window=None, frame_step=1, frame_length=1, onesided=True):
    c = _complex(xp, x)  # [batch, n]
    frames = (c.shape[1] - frame_length) // frame_step + 1
    starts = xp.arange(frames)[:, None] * frame_step + xp.arange(frame_length)[None, :]
    framed = c[:, starts]  # [batch, frames, frame_length]
    if window is not None:
        framed = framed * window.astype(framed.real.dtype)
    y = xp.fft.fft(framed, n=frame_length, axis=-1)
    if onesided:
        y = y[..., : frame_length // 2 + 1]
    return _pairs(xp, y, x.dtype)


register(OpDef(name="stft", infer=_stft_infer, dims=_stft_dims, reference=_stft_ref, num_inputs=(1, 2),
               workspace=_fft_workspace, attrs={"frame_step": REQUIRED, "frame_length": REQUIRED, "onesided": True},
               torch=ON_HOST,
               flops=lambda ins, a, outs: normalize(5 * outs[0].numel() * 8),
               doc="stft(signal, [window], frame_step=, frame_length=, onesided=True): the short-time Fourier "
                   "transform of [batch, samples, 1|2]. Carries: the batch axis."))
