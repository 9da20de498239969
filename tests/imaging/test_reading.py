"""Strict reading: deflated files inflated by libdeflate give exactly what pydicom reads."""

from __future__ import annotations

import sys
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


def test_a_missing_fast_decoder_is_a_warning_and_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cxrlab.imaging import decoders
    from cxrlab.imaging.convert import ConvertOptions, convert

    make_dicom(
        tmp_path / "src", "ls.dcm", chest_like(40, 30), transfer_syntax=TRANSFER_SYNTAXES["jpegls_lossless"]
    )
    families = {
        d.family for d in decoders.FAST_DECODERS if TRANSFER_SYNTAXES["jpegls_lossless"] in d.syntaxes
    }
    assert families == {"JPEG-LS"}  # the table names one package for the syntax
    monkeypatch.setitem(sys.modules, "imagecodecs", None)  # as if not installed: importing it fails
    decoders._importable.cache_clear()
    decoders._warn_once.cache_clear()
    with pytest.warns(decoders.MissingDecoderWarning, match="imagecodecs"):
        convert(tmp_path / "src", tmp_path / "out", ConvertOptions(size=16))
    import pandas as pd

    decoders._importable.cache_clear()
    row = pd.read_parquet(tmp_path / "out" / "manifest.parquet").iloc[0]
    assert row["status"] == "ok" and row["decoder"] == "pydicom" and "decoded by pydicom" in row["notes"]
