"""``decode_image(data; pixel_format, height, width)``: an encoded image (ONNX ``ImageDecoder``).

``data`` is the u8 bytes of a JPEG, PNG, BMP, TIFF, WebP, JPEG 2000 or PNM file;
the result is u8 ``[height, width, channels]`` (3 channels for ``RGB`` and ``BGR``,
1 for ``Grayscale``).  Pillow decodes it (its decompression-bomb limit applies).
``height`` and ``width`` name size symbols that no input has (names, not sizes: they
are not evaluated before the node runs): the image's own sizes, bound when the node
runs (``Graph.data_dependent_sizes``).  No axis carries: a barrier, never inside a chunk
loop.  (Pillow's BMP and TIFF readers build tuples of generators, which leave a tuple in
CPython's free list per image opened: tracemalloc counts it, once per program call, up to
the free list's 2000 entries; nothing of ours can avoid it.)
"""

from __future__ import annotations

import io

import numpy as np

from ...errors import ChunkcError
from ..dtypes import DType
from ..lowering import ON_HOST
from ..registry import OpDef, REQUIRED, barrier_dims, register
from ..sizes import sym
from ..types import TensorType
from ._common import fail, host_array

CHANNELS = {"RGB": 3, "BGR": 3, "Grayscale": 1}


def _infer(ins, attrs):
    data = ins[0]
    if data.dtype != DType.uint8 or data.rank != 1:
        raise fail("decode_image", f"data must be u8 bytes of rank 1, got {data}")
    if attrs["pixel_format"] not in CHANNELS:
        raise fail("decode_image", f"pixel_format must be one of {', '.join(CHANNELS)}, got {attrs['pixel_format']!r}")
    try:
        sizes = (sym(attrs["height"]), sym(attrs["width"]))
    except (ValueError, TypeError):
        raise fail("decode_image", f"height and width must name size symbols, got {attrs['height']!r}, "
                                   f"{attrs['width']!r}") from None
    return (TensorType(DType.uint8, sizes + (CHANNELS[attrs["pixel_format"]],)),)


def _reference(xp, data, pixel_format="RGB", height=None, width=None):
    try:
        from PIL import Image
    except ImportError:
        raise ChunkcError("decode_image needs Pillow: pip install pillow") from None
    try:
        with Image.open(io.BytesIO(host_array(data).astype(np.uint8, copy=False).tobytes())) as img:
            decoded = np.asarray(img.convert("L" if pixel_format == "Grayscale" else "RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ChunkcError(f"decode_image: the data is not an image Pillow can decode: {exc}") from None
    if pixel_format == "Grayscale":
        decoded = decoded[:, :, None]
    elif pixel_format == "BGR":
        decoded = decoded[:, :, ::-1]
    return xp.asarray(np.ascontiguousarray(decoded))


register(OpDef(name="decode_image", infer=_infer, dims=barrier_dims, reference=_reference, exact_dtypes=True,
               torch=ON_HOST,  # Pillow decodes, on the host
               attrs={"pixel_format": "RGB", "height": REQUIRED, "width": REQUIRED},
               doc="decode_image(data, pixel_format='RGB', height='H', width='W'): an encoded image's u8 pixels "
                   "[H, W, channels]; H and W are bound when it runs. Carries: nothing (a barrier)."))
