"""Phantom datasets: synthetic chest radiographs in the real VinDr-CXR and NIH ChestX-ray14 formats."""

from cxrlab.datasets.phantom.dicom_writer import (
    DEIDENTIFIED_KEYWORDS,
    LOSSLESS_SYNTAXES,
    TRANSFER_SYNTAXES,
    DicomSpec,
    make_uid,
    write_dicom,
)

__all__ = [
    "DEIDENTIFIED_KEYWORDS",
    "LOSSLESS_SYNTAXES",
    "TRANSFER_SYNTAXES",
    "DicomSpec",
    "make_uid",
    "write_dicom",
]
