"""Phantom datasets: synthetic chest radiographs in the real VinDr-CXR and NIH ChestX-ray14 formats.

``make_vindr`` and ``make_nih`` write every file of docs/formats.md (plus ``phantom_truth.csv``, the boxes as
drawn); ``make_hospital`` writes a hospital export full of fake patient information, to de-identify;
``render_chest`` draws one radiograph; ``write_dicom`` writes one DICOM in any syntax listed in
``TRANSFER_SYNTAXES``.
"""

from cxrlab.datasets.phantom.anatomy import (
    LESION_KINDS,
    ChestGeometry,
    Lesion,
    enlarge_heart,
    place_lesion,
    render_chest,
    sample_geometry,
)
from cxrlab.datasets.phantom.common import MARKER, TRUTH_FILE, PhantomResult
from cxrlab.datasets.phantom.dicom_writer import (
    DEIDENTIFIED_KEYWORDS,
    LOSSLESS_SYNTAXES,
    TRANSFER_SYNTAXES,
    DicomSpec,
    make_uid,
    write_dicom,
)
from cxrlab.datasets.phantom.hospital import make_hospital
from cxrlab.datasets.phantom.nih import make_nih
from cxrlab.datasets.phantom.vindr import LAYOUTS, make_vindr

__all__ = [
    "DEIDENTIFIED_KEYWORDS",
    "LAYOUTS",
    "LESION_KINDS",
    "LOSSLESS_SYNTAXES",
    "MARKER",
    "TRANSFER_SYNTAXES",
    "TRUTH_FILE",
    "ChestGeometry",
    "DicomSpec",
    "Lesion",
    "PhantomResult",
    "enlarge_heart",
    "make_hospital",
    "make_nih",
    "make_uid",
    "make_vindr",
    "place_lesion",
    "render_chest",
    "sample_geometry",
    "write_dicom",
]
