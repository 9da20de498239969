"""The hand-written PNG encoder against the libraries that read PNG (OpenCV, Pillow) and the one it replaces
(OpenCV's encoder): the same pixels back, every edge of the Average filter, both bit depths."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import realdata_path
from cxrlab.imaging.allocator import keep_freed_memory
from cxrlab.imaging.pipeline import PNG_PARAMS, encode_image
from cxrlab.imaging.png import average_filter, encode_png


def _decoded(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    by_cv2 = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        by_pil = np.asarray(im)
    return np.asarray(by_cv2), by_pil


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (7, 1), (2, 2), (37, 53)])
def test_random_images_read_back_identical(shape: tuple[int, int], dtype: type) -> None:
    """Random values hit every wrap-around of the filter's modulo-256 arithmetic; the odd shapes hit the
    first row (no upper neighbour) and first column (no left neighbour)."""
    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    by_cv2, by_pil = _decoded(encode_png(img))
    assert by_cv2.dtype == dtype
    np.testing.assert_array_equal(by_cv2.reshape(shape), img)
    np.testing.assert_array_equal(by_pil.reshape(shape), img)


def test_average_filter_matches_the_png_definition() -> None:
    """The vectorised filter against the per-byte definition of PNG filter type 3 (bpp 2: 16-bit)."""
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 256, (5, 8), dtype=np.uint8)
    got = average_filter(raw, 2)
    for y in range(5):
        assert got[y, 0] == 3
        for x in range(8):
            left = int(raw[y, x - 2]) if x >= 2 else 0
            up = int(raw[y - 1, x]) if y >= 1 else 0
            assert got[y, x + 1] == (int(raw[y, x]) - (left + up) // 2) % 256


def test_real_chest_image_same_pixels_as_opencv_encoder() -> None:
    """A real radiograph (NIH PNG): the pixels of our PNG equal those of OpenCV's; the stream is a valid
    zlib stream and within a few tens of percent of OpenCV's best setting in size."""
    img = cv2.imread(str(realdata_path("images/nih_png/00000001_000.png")), cv2.IMREAD_GRAYSCALE)
    ours = encode_image(img, "png")
    theirs = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1, *PNG_PARAMS])[1].tobytes()
    for decoded in _decoded(ours):
        np.testing.assert_array_equal(decoded, img)
    idat = ours[ours.index(b"IDAT") + 4 : ours.index(b"IEND") - 8]
    assert zlib.decompress(idat)[:: img.shape[1] + 1] == b"\x03" * img.shape[0]  # every row: Average
    assert len(ours) < 1.3 * len(theirs)


def test_sixteen_bit_output_is_big_endian_png() -> None:
    img = np.array([[0, 1, 256, 65535]], dtype=np.uint16)
    data = encode_image(img, "png16")
    assert data[24] == 16  # IHDR bit depth
    np.testing.assert_array_equal(_decoded(data)[0], img)


def test_refuses_colour_and_float() -> None:
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        encode_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="2-D uint8 or uint16"):
        encode_png(np.zeros((4, 4), np.float32))


def test_allocator_setting_is_applied_once() -> None:
    """On glibc (this machine) both thresholds are accepted; a second call does nothing more."""
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
