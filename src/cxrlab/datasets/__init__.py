"""Readers of each source layout (NIH, VinDr-CXR) and the phantom generator, all into the two tables.

The public names are importable from here; each loads its module on first use, so that importing one
reader (or the phantom) does not import them all.
"""

from __future__ import annotations

from cxrlab.lazy import lazy_exports

_EXPORTS = {
    "DatasetIndex": "index",
    "NihIndex": "nih",
    "index_nih": "nih",
    "write_index": "nih",
    "read_entry_table": "nih_files",
    "read_bbox_list": "nih_files",
    "read_list": "nih_files",
    "ArchiveCheck": "nih_archives",
    "read_md5_file": "nih_archives",
    "verify_archive": "nih_archives",
    "verify_folder": "nih_archives",
    "ArchiveDamaged": "nih_extract",
    "ExtractSummary": "nih_extract",
    "extract_archive": "nih_extract",
    "extract_folder": "nih_extract",
    "VindrIndex": "vindr",
    "detect_layout": "vindr",
    "index_vindr": "vindr",
    "SplitCheck": "splits",
    "check_splits": "splits",
    "make_splits": "splits",
    "parse_fractions": "splits",
    "label_balance": "splits",
    "write_split_tables": "splits",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
