"""Op info of chunkc/ir/ops/extra_image.py: decode_image, on images Pillow encodes losslessly."""

from __future__ import annotations

import io

import numpy as np

from chunkc import ops as O
from opdb import L, OpInfo, S


def encoded(pixels: np.ndarray, fmt: str) -> np.ndarray:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8).copy()


def _samples(rng):
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(4, 6), dtype=np.uint8)
    return [S(encoded(rgb, "PNG"), height="h", width="w"), S(encoded(rgb, "BMP"), pixel_format="BGR", height="h", width="w"),
            S(encoded(gray, "PNG"), pixel_format="Grayscale", height="h", width="w")]


def _ref(data, pixel_format="RGB", height=None, width=None):
    from PIL import Image
    img = Image.open(io.BytesIO(data.tobytes()))
    if pixel_format == "Grayscale":
        return np.asarray(img.convert("L"))[:, :, None]
    rgb = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1]) if pixel_format == "BGR" else rgb


def _graph(s):
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 5, 3), dtype=np.uint8)
    data = s.graph.add_constant("png", encoded(pixels, "PNG"))
    x = s.inp("f32", (L, 2), -1, 1)  # the sizes sample graphs run at
    return O.decode_image(data, height="h", width="w"), x


OPINFOS = [OpInfo("decode_image", _samples, _ref, graphs=[_graph])]
