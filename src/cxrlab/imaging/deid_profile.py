"""The de-identification profiles as data, applied to one pydicom Dataset in memory.

Two profiles, each a table in ``imaging/profiles/``:

- ``basic``: DICOM PS3.15 Annex E, Table E.1-1 (the edition is named on the table's first line), the Basic
  Application Level Confidentiality Profile: one action per attribute, D (dummy), Z (empty), X (remove),
  K (keep), U (replace the UID), applied wherever the attribute occurs, inside sequences too; every private
  attribute removed; everything the table does not list kept. Where the table leaves the choice to the
  attribute's type in the IOD (which this engine does not look up), the value-free choice that keeps a
  Type 2 attribute present is taken: ``X/Z``, ``Z/D``, ``X/Z/D`` -> Z; ``X/D`` -> X; ``X/Z/U*`` -> U (for a
  sequence: walk it). D on a sequence walks it (its items get the profile); D elsewhere writes a fixed dummy
  of the VR. Patient ID (Z/D) gets the keyed pseudonym (a D choice), so a patient's images stay linked.
  Options (the table's own columns): Retain Patient Characteristics (its K rows are kept; its C rows, free
  text such as allergies, get the Basic action, since no program can clean free text safely) and Retain
  Longitudinal Temporal Information with Modified Dates (its C rows: dates and date-times moved back by one
  keyed number of days per patient, times of day kept since a whole-day shift leaves them unchanged).
- ``vindr``: the whitelist the VinDr-CXR release kept (sex, age, size, weight, the pixel description,
  windows, rescale, lossy-compression tags, VOI LUT, pixel data), plus the study / series / instance UIDs as
  pseudonyms so that grouping survives; everything else, private attributes included, is dropped.

In both, every UID that is not a standard one (root ``1.2.840.10008.``) is an instance UID and becomes
``2.25.`` + the decimal HMAC-SHA256 of the original under the secret, cut to 64 characters: deterministic,
consistent across files (grouping kept), irreversible without the secret. The file meta is rebuilt (the
Media Storage SOP Instance UID follows), Patient Identity Removed is YES and De-identification Method (with
its code sequence, CID 7050) says what was done. Pixel Data is never touched: its bytes go out as they came.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from cxrlab import __version__
from cxrlab.errors import ParameterError
from cxrlab.params import check_choice

__all__ = [
    "PROFILES",
    "ProfileOptions",
    "Pseudonymizer",
    "apply_profile",
    "basic_rules",
    "burned_in_reason",
    "load_table",
    "table_digest",
    "table_edition",
    "vindr_whitelist",
]

PROFILE_DIR = Path(__file__).parent / "profiles"
TABLES = {"basic": "basic_ps315_annex_e.csv", "vindr": "vindr_whitelist.csv"}
PROFILES = tuple(TABLES)
STANDARD_UID_ROOT = "1.2.840.10008."
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1583.2"  # cxrlab's demo root, deid branch
COMPOUND = {"X/Z": "Z", "Z/D": "Z", "X/Z/D": "Z", "X/D": "X", "X/Z/U*": "U"}
"""The choice taken where Table E.1-1 leaves it to the attribute's type in the IOD (see the docstring)."""
PATIENT_ID = Tag(0x0010, 0x0020)
DUMMIES: dict[str, Any] = {
    "DA": "19000101", "TM": "000000", "DT": "19000101000000", "PN": "ANONYMOUS", "AS": "000Y",
    "IS": "0", "DS": "0", "US": 0, "SS": 0, "UL": 0, "SL": 0, "UV": 0, "SV": 0, "FL": 0.0, "FD": 0.0,
    "UI": "2.25.0", "CS": "ANONYMOUS", "AE": "ANONYMOUS",
}  # fmt: skip
"""The dummy value of action D per VR; any other text VR gets ``ANONYMIZED``, binary VRs an empty value."""
SHIFTED_VRS = ("DA", "DT")
MAX_SHIFT_DAYS = 3650


@dataclass(frozen=True)
class ProfileOptions:
    """Which table, and the two options of PS3.15 the basic profile offers here."""

    profile: str = "vindr"
    retain_patient_characteristics: bool = False
    retain_dates_shifted: bool = False

    def __post_init__(self) -> None:
        check_choice(self.profile, PROFILES, "profile")
        if self.profile == "vindr" and (self.retain_patient_characteristics or self.retain_dates_shifted):
            raise ParameterError(
                "profile",
                "must be basic for the PS3.15 options (retain patient characteristics, retain dates "
                "shifted); the vindr whitelist keeps sex, age, size and weight, and no dates",
            )


# ---------------------------------------------------------------- the tables


def load_table(profile: str) -> list[dict[str, str]]:
    """The rows of a profile's table (the ``#`` lines above the header say where it comes from)."""
    path = PROFILE_DIR / TABLES[profile]
    with open(path, encoding="utf-8", newline="") as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines))


def table_edition(profile: str) -> str:
    """The first comment line of the table: which standard edition or release it transcribes."""
    with open(PROFILE_DIR / TABLES[profile], encoding="utf-8") as fh:
        return fh.readline().lstrip("# ").strip()


def table_digest(profile: str) -> str:
    """A short hash of the table's bytes: an output folder made with other rules is not resumed."""
    return hashlib.sha256((PROFILE_DIR / TABLES[profile]).read_bytes()).hexdigest()[:16]


def _parse_tag(text: str) -> tuple[str, str]:
    group, element = text.strip("()").split(",")
    return group.upper(), element.upper()


@dataclass(frozen=True)
class BasicRules:
    """Table E.1-1 resolved for a set of options: one action per tag, plus the repeating groups."""

    actions: dict[int, str]
    curves: str  # action for (50XX,XXXX)
    overlay_data: str  # action for (60XX,3000); X removes the whole overlay group
    overlay_comments: str
    private: str


@cache
def basic_rules(retain_patient_characteristics: bool, retain_dates_shifted: bool) -> BasicRules:
    """Resolve every row's action: the option columns first, then the compound choices (COMPOUND)."""
    actions: dict[int, str] = {}
    special: dict[str, str] = {}
    for row in load_table("basic"):
        action = row["basic"]
        if retain_patient_characteristics and row["retain_patient_characteristics"] == "K":
            action = "K"
        if retain_dates_shifted and row["retain_long_modified_dates"] == "C":
            action = "C"
        action = COMPOUND.get(action, action)
        group, element = _parse_tag(row["tag"])
        if "X" in group + element or "G" in group:
            special[f"{group},{element}"] = action
        else:
            actions[int(group + element, 16)] = action
    return BasicRules(
        actions=actions,
        curves=special["50XX,XXXX"],
        overlay_data=special["60XX,3000"],
        overlay_comments=special["60XX,4000"],
        private=special["GGGG,EEEE"],
    )


@cache
def vindr_whitelist() -> frozenset[int]:
    """Every tag the vindr profile lets through, at any depth (kept, pseudonymised, or added by deid)."""
    tags = set()
    for row in load_table("vindr"):
        group, element = _parse_tag(row["tag"])
        tags.add(int(group + element, 16))
    return frozenset(tags)


# ---------------------------------------------------------------- keyed pseudonyms


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed, deterministic replacements: the same secret and original always give the same pseudonym."""

    secret: bytes = field(repr=False)

    def _mac(self, kind: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{kind}\x00{value}".encode(), hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """``2.25.`` + the HMAC as a decimal integer, cut to the 64 characters a UID may have."""
        return ("2.25." + str(int.from_bytes(self._mac("uid", original.strip()), "big")))[:64]

    def patient_id(self, original: str) -> str:
        return self._mac("patient", original.strip()).hex()[:24].upper()

    def day_shift(self, patient_key: str) -> int:
        """Days (1 .. MAX_SHIFT_DAYS) every date of this patient moves back."""
        return 1 + int.from_bytes(self._mac("dateshift", patient_key)[:8], "big") % MAX_SHIFT_DAYS

    def fingerprint(self) -> str:
        """Names the secret in settings files without revealing it."""
        return self._mac("fingerprint", "cxrlab-deid").hex()[:16]


# ---------------------------------------------------------------- one dataset


def burned_in_reason(ds: Dataset) -> str | None:
    """Why the pixels may show text (BurnedInAnnotation YES, a screen save or secondary capture), or None."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "burned-in annotation (BurnedInAnnotation is YES)"
    image_type = ds.get("ImageType")
    values = [image_type] if isinstance(image_type, str) else list(image_type or [])
    text = " ".join(str(v).upper() for v in values)
    shown = "\\".join(map(str, values))
    for marker in ("SCREEN SAVE", "SCREEN CAPTURE", "SECONDARY CAPTURE"):
        if marker in text:
            return f"image type says {marker.lower()} ({shown})"
    return None


@dataclass
class Cleaning:
    """The state of cleaning one file: the keys, this patient's day shift, and counts by kind of change."""

    keys: Pseudonymizer
    day_shift: int = 0
    counts: Counter[str] = field(default_factory=Counter)


def apply_profile(ds: Dataset, options: ProfileOptions, keys: Pseudonymizer) -> Counter[str]:
    """De-identify ``ds`` in place (file meta rebuilt); return the counts of what was changed, by kind."""
    original_patient = str(ds.get("PatientID", "") or "").strip()
    patient_key = original_patient or str(ds.get("StudyInstanceUID", ""))  # no patient id: one per study
    cleaning = Cleaning(keys, day_shift=keys.day_shift(patient_key))
    if options.profile == "vindr":
        _walk_whitelist(ds, vindr_whitelist(), cleaning)
    else:
        rules = basic_rules(options.retain_patient_characteristics, options.retain_dates_shifted)
        _walk_basic(ds, rules, cleaning)
    _mark(ds, options)
    _rebuild_meta(ds)
    return cleaning.counts


def _vr(ds: Dataset, tag: BaseTag) -> str:
    """The VR without parsing the value (an implicit-VR file's raw elements carry none: the dictionary's)."""
    vr = ds.get_item(tag).VR
    if vr:
        return str(vr)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _walk_whitelist(ds: Dataset, allowed: frozenset[int], c: Cleaning) -> None:
    for tag in list(ds.keys()):
        if tag not in allowed:
            c.counts["private" if tag.is_private else "removed"] += 1
            del ds[tag]
            continue
        vr = _vr(ds, tag)  # the kept elements are never parsed unless they are sequences or UIDs
        if vr == "SQ":
            for item in ds[tag].value or []:
                _walk_whitelist(item, allowed, c)
        elif vr == "UI":
            _replace_uids(ds[tag], c)


def _walk_basic(ds: Dataset, rules: BasicRules, c: Cleaning) -> None:
    for tag in list(ds.keys()):
        action = _basic_action(tag, rules)
        if action == "X":
            c.counts["private" if tag.is_private else "removed"] += 1
            del ds[tag]
            continue
        vr = _vr(ds, tag)
        if action in (None, "K") and vr not in ("SQ", "UI"):
            continue  # kept as read, never parsed (Pixel Data among them)
        elem = ds[tag]
        if vr == "SQ" and action != "Z":  # K, D, U, C or unlisted: the profile applies to the items
            for item in elem.value or []:
                _walk_basic(item, rules, c)
        elif action == "Z":
            if not _is_empty(elem.value):
                c.counts["emptied"] += 1
            elem.value = Sequence([]) if vr == "SQ" else None
        elif action == "D":
            _dummy(elem, c)
        elif action == "C":
            _shift_dates(elem, c)
        elif vr == "UI" and action in ("U", None):
            _replace_uids(elem, c)


def _basic_action(tag: BaseTag, rules: BasicRules) -> str | None:
    if tag.is_private:
        return rules.private
    if tag.element == 0 and tag.group != 0x0002:
        return "X"  # group lengths: retired, and wrong once elements go
    group = tag.group
    if 0x5000 <= group <= 0x50FF:
        return rules.curves
    if 0x6000 <= group <= 0x60FF:
        if tag.element == 0x4000:
            return rules.overlay_comments
        return rules.overlay_data  # an overlay without its data is invalid: the whole group goes with it
    if tag == PATIENT_ID:
        return "D"
    return rules.actions.get(int(tag))


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, list | tuple) and not value)


def _values(elem: Any) -> list[Any]:
    """The values of an element as a list (pydicom's ``VM`` property is slow on large headers)."""
    value = elem.value
    return list(value) if isinstance(value, MultiValue | list | tuple) else [value]


def _replace_uids(elem: Any, c: Cleaning) -> None:
    values = _values(elem)
    new = []
    for value in values:
        text = str(value or "").strip()
        if text and not text.startswith(STANDARD_UID_ROOT):
            text = c.keys.uid(text)
            c.counts["uids"] += 1
        new.append(text)
    elem.value = new if len(new) > 1 else new[0]


def _dummy(elem: Any, c: Cleaning) -> None:
    if elem.tag == PATIENT_ID:
        if not _is_empty(elem.value):
            elem.value = c.keys.patient_id(str(elem.value))
            c.counts["patient_id"] += 1
        return
    if elem.VR == "UI":
        _replace_uids(elem, c)
        return
    if elem.VR in DUMMIES:
        elem.value = DUMMIES[elem.VR]
    elif elem.VR in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        elem.value = b""
    else:
        elem.value = "ANONYMIZED"
    c.counts["dummy"] += 1


def _shift_dates(elem: Any, c: Cleaning) -> None:
    """Move a DA / DT back by the patient's day shift (times of day kept); empty an unreadable date."""
    if elem.VR not in SHIFTED_VRS or _is_empty(elem.value):
        return
    values = _values(elem)
    shifted = [_shift_one(str(v).strip(), c.day_shift) for v in values]
    if any(s is None for s in shifted):
        elem.value = None
        c.counts["emptied"] += 1
        return
    elem.value = shifted if len(shifted) > 1 else shifted[0]
    c.counts["dates_shifted"] += 1


def _shift_one(text: str, days: int) -> str | None:
    try:
        day = dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None
    return (day - dt.timedelta(days=days)).strftime("%Y%m%d") + text[8:]


# ---------------------------------------------------------------- what the file says about itself


def method_text(options: ProfileOptions) -> list[str]:
    """De-identification Method: values of at most 64 characters (LO) saying what was done."""
    if options.profile == "vindr":
        lines = ["cxrlab deid " + __version__ + ": VinDr-CXR whitelist", "all other tags removed"]
    else:
        lines = ["cxrlab deid " + __version__ + ": PS3.15 Annex E Basic Profile"]
        if options.retain_patient_characteristics:
            lines.append("Retain Patient Characteristics Option")
        if options.retain_dates_shifted:
            lines.append("Retain Longitudinal With Modified Dates Option")
    lines.append("private tags removed")
    who = "UIDs" if options.profile == "vindr" else "UIDs, Patient ID"
    lines.append(f"{who}: keyed HMAC-SHA256 pseudonyms")
    return [line[:64] for line in lines]


def _codes(options: ProfileOptions) -> Iterable[tuple[str, str]]:
    """CID 7050 codes (scheme DCM) of the profile and options applied."""
    yield "113100", "Basic Application Confidentiality Profile"
    if options.profile == "vindr" or options.retain_patient_characteristics:
        yield "113108", "Retain Patient Characteristics Option"
    if options.retain_dates_shifted:
        yield "113107", "Retain Longitudinal Temporal Information Modified Dates Option"


def _mark(ds: Dataset, options: ProfileOptions) -> None:
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = method_text(options)
    items = []
    for value, meaning in _codes(options):
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if options.retain_dates_shifted else "REMOVED"


def _rebuild_meta(ds: Dataset) -> None:
    """A new file meta: nothing of the sender's (source AE title, private meta) survives."""
    old = ds.file_meta
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = old.TransferSyntaxUID
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = "CXRLAB_DEID"
    ds.file_meta = meta
