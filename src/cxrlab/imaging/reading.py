"""Open a DICOM file strictly: refuse what is not DICOM, read every element, say "truncated" when it is.

pydicom with ``force=True`` makes a dataset of almost anything (a text file, random bytes, a PNG renamed
``.dicom``) and converts element values only when they are first used, so a corrupt element length surfaces
later as an exception in whatever code touches the element. Every command that reads DICOM goes through
:func:`read_dicom`: the file must start like DICOM, every element (sequences included) is converted here,
and any failure becomes a :class:`DecodeError` that names the file; the caller never sees a half-read
dataset. Files are opened read-only.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import pydicom
from pydicom.datadict import keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from cxrlab.errors import CxrlabError

__all__ = ["DecodeError", "looks_like_dicom", "read_dicom"]

PREAMBLE = 128
DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")  # (7FE0,0010) little and big endian
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT "
    b"UV".split()
)


class DecodeError(CxrlabError):
    """A file that cannot be read or decoded; the message names the file."""


def looks_like_dicom(head: bytes) -> bool:
    """True for the ``DICM`` marker after the 128-byte preamble, or for a preamble-less dataset that starts
    with a plausible first element (group 0002 or 0008, explicit or implicit VR little endian)."""
    if head[PREAMBLE : PREAMBLE + 4] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group, element = struct.unpack_from("<HH", head)
    if group not in (0x0002, 0x0008) or element > 0x0100:
        return False
    if head[4:6] in _VRS:
        return True
    length = struct.unpack_from("<I", head, 4)[0]  # implicit VR: a short first value
    return length < 1024


def _read(path: Path, pixels: bool, deflated: bool = False) -> Dataset:
    with warnings.catch_warnings():  # pydicom warns on every quirk; problems are reported per file
        warnings.simplefilter("ignore")
        ds = _read_deflated(path) if deflated and pixels else None
        if ds is None:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=not pixels)
        _convert_all(ds)
    return ds


def _read_deflated(path: Path) -> Dataset | None:
    """A Deflated Explicit VR Little Endian file, inflated by libdeflate (imagecodecs): the same bytes as
    pydicom's zlib inflate, ~1.7-2.4x faster on a 10 MB radiograph. None when the layout is unexpected
    (pydicom then reads the file as usual)."""
    try:
        import imagecodecs
    except ImportError:  # the fast decoder table warns about it; pydicom inflates instead
        return None
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset, read_file_meta_info

    data = path.read_bytes()
    meta = read_file_meta_info(path)
    length = meta.get("FileMetaInformationGroupLength")
    deflated = str(meta.get("TransferSyntaxUID", "")) == DEFLATED_UID.decode()
    if not deflated or data[PREAMBLE : PREAMBLE + 4] != b"DICM" or length is None:
        return None
    body = memoryview(data)[PREAMBLE + 4 + 12 + int(length) :]
    inflated = None
    for factor in (4, 16, 64):  # libdeflate needs an output bound; deflate rarely beats 4:1 on radiographs
        try:
            inflated = imagecodecs.deflate_decode(body, raw=True, out=factor * len(body) + 65536)  # type: ignore[arg-type]  # any buffer: no copy
            break
        except imagecodecs.DeflateError:
            continue
    if inflated is None:
        return None
    ds = read_dataset(io.BytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    return FileDataset(path, ds, preamble=data[:PREAMBLE], file_meta=meta, is_implicit_VR=False,
                       is_little_endian=True)  # fmt: skip


def _convert_all(ds: Dataset) -> None:
    """Convert every raw element now (pydicom defers it): a corrupt length or value raises here.

    A wrong length makes pydicom go on reading from the wrong place: what follows are tags no standard
    defines (an even group, not in the data dictionary), which is refused as corruption."""
    for element in ds:
        tag = element.tag
        if tag.element != 0 and not _possible(tag):
            raise ValueError(
                f"element ({tag.group:04X},{tag.element:04X}) is no DICOM attribute: "
                "a corrupt element length or value before it"
            )
        if element.VR == "SQ":
            for item in element.value or ():
                _convert_all(item)


def _possible(tag: BaseTag) -> bool:
    """A standard tag of the dictionary, or a private tag in the ranges PS3.5 7.8.1 allows: creators
    (gggg,0010-00FF) and data (gggg,1000-FFFF), even without their creator (real files have orphans)."""
    if not tag.is_private:
        return bool(keyword_for_tag(tag))
    return 0x0010 <= tag.element <= 0x00FF or tag.element >= 0x1000


def read_dicom(path: str | Path, *, pixels: bool = True) -> Dataset:
    """The dataset of ``path`` with every element read (and the Pixel Data bytes when ``pixels``).

    Raises :class:`DecodeError` naming the file: not DICOM, truncated, or an element that cannot be read.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)  # the preamble and the file meta, which names the transfer syntax
    except OSError as exc:
        raise DecodeError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not looks_like_dicom(head):
        raise DecodeError(f"{path}: not a DICOM file (no DICM marker and no DICOM element at the start)")
    try:
        ds = _read(path, pixels, deflated=DEFLATED_UID in head)
    except Exception as exc:  # pydicom raises many types on a truncated or garbled file
        raise DecodeError(f"{path}: {_why_unreadable(path, pixels, exc)}") from None
    if len(ds) == 0:
        if pixels and _header_reads(path) and _has_pixel_tag(path):
            raise DecodeError(f"{path}: truncated or damaged: the Pixel Data (7FE0,0010) could not be read")
        raise DecodeError(f"{path}: not a DICOM file (no DICOM elements found)")
    if pixels and "PixelData" not in ds and _has_pixel_tag(path):
        raise DecodeError(f"{path}: truncated or damaged: the Pixel Data (7FE0,0010) could not be read")
    return ds


def _why_unreadable(path: Path, pixels: bool, exc: Exception) -> str:
    detail = f"{type(exc).__name__}: {exc}"
    if pixels:
        try:
            _read(path, pixels=False)
        except Exception:
            return f"not a readable DICOM file ({detail})"
        if _has_pixel_tag(path):  # the header reads, the pixels do not: cut or damaged inside them
            return f"truncated or damaged Pixel Data ({detail})"
    return f"not a readable DICOM file ({detail})"


def _header_reads(path: Path) -> bool:
    try:
        return len(_read(path, pixels=False)) > 0
    except Exception:
        return False


def _has_pixel_tag(path: Path) -> bool:
    data = path.read_bytes()
    return any(tag in data for tag in PIXEL_DATA_TAGS)
