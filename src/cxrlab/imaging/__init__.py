"""DICOM decoding with the display pipeline, resizing with boxes, and the parallel conversion.

The public names below load their module on first use (``from cxrlab.imaging import read_dicom``), so that
importing one small module (the manifest reader, the lock) does not pull in OpenCV, pydicom and pandas.
The conversion itself is ``cxrlab.imaging.convert.convert`` (the module shares its name).
"""

from __future__ import annotations

from cxrlab.lazy import lazy_exports

_EXPORTS = {
    "ConvertOptions": "pipeline",
    "convert_file": "pipeline",
    "encode_image": "pipeline",
    "ConvertResult": "convert",
    "collect_tasks": "convert",
    "DecodeError": "reading",
    "read_dicom": "reading",
    "looks_like_dicom": "reading",
    "Decoded": "decoders",
    "FAST_DECODERS": "decoders",
    "MissingDecoderWarning": "decoders",
    "decode_pixels": "decoders",
    "read_dataset": "decoders",
    "DisplayOptions": "dicom",
    "display_table": "dicom",
    "to_display": "dicom",
    "MANIFEST_COLUMNS": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
    "FolderBusy": "lock",
    "folder_lock": "lock",
    "Task": "runner",
    "run_tasks": "runner",
    "Resize": "transform",
    "plan_resize": "transform",
    "resize_image": "transform",
    "scale_findings": "transform",
    "inspect_dicom": "tags",
    "phi_check": "tags",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
