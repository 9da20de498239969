"""Strict reading: deflated files inflated by libdeflate give exactly what pydicom reads."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES
from cxrlab.imaging.decoders import decode_pixels, read_dataset


@pytest.mark.parametrize("seed", [0, 1])
def test_deflated_file_read_by_libdeflate_equals_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          seed: int) -> None:  # fmt: skip
    path = make_dicom(tmp_path, "d.dcm", chest_like(300, 250, seed=seed), windows=[(2000, 3000), (900, 400)],
                      transfer_syntax=TRANSFER_SYNTAXES["deflated_le"])  # fmt: skip
    calls = []
    real = imagecodecs.deflate_decode

    def counting(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imagecodecs, "deflate_decode", counting)
    ours = read_dataset(path)
    assert calls, "libdeflate was not used"
    theirs = pydicom.dcmread(path)
    assert [e.tag for e in ours] == [e.tag for e in theirs]
    for element in theirs:
        assert ours[element.tag].value == element.value, element.keyword
    assert str(ours.file_meta.TransferSyntaxUID) == str(theirs.file_meta.TransferSyntaxUID)
    assert np.array_equal(decode_pixels(ours).pixels, theirs.pixel_array)
