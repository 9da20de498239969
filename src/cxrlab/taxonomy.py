"""Label sets of the chest X-ray datasets, tolerant name matching and the mapping between sets.

Every findings table stores canonical names: the spelling of the dataset's own release, except that the
normal label is always ``No finding``, whatever the release calls it. Names typed by users or found in other
releases (``Infiltrate``, ``pleural_thickening``, ``Other disease``) resolve through :func:`canonical`.

Matching only resolves spellings of the same finding; it never maps a finding onto a broader or narrower one:
``Mass`` does not match VinDr's ``Nodule/Mass`` (nor ``Nodule/Mass`` an NIH label), it is unknown there and
goes through :func:`map_label`, where ``nih Mass -> vindr Nodule/Mass`` is written down explicitly.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import cached_property

from cxrlab.errors import CxrlabError, ParameterError

NO_FINDING = "No finding"


class UnknownLabelError(CxrlabError, KeyError):
    """A label name that no spelling of the label set matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of labels with the extra spellings each is known by."""

    name: str
    labels: tuple[str, ...]
    aliases: dict[str, str] = field(default_factory=dict)
    local: tuple[str, ...] = ()
    """Labels drawn with boxes (VinDr's 22 local findings); empty where the set has no boxes by design."""
    class_ids: dict[str, int] = field(default_factory=dict)
    """Integer ids where a release numbers its classes (the VinBigData challenge)."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.match(name) is not None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.labels)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def findings(self) -> tuple[str, ...]:
        """All labels except ``No finding``."""
        return tuple(label for label in self.labels if label != NO_FINDING)

    @property
    def global_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.labels if label not in self.local)

    def match(self, name: str) -> str | None:
        """The canonical label for ``name`` or None; tolerant of case, spaces, underscores, hyphens."""
        return self._lookup.get(normalize(name))

    def canonical(self, name: str) -> str:
        """The canonical label for ``name``; raises :class:`UnknownLabelError` with a near match."""
        found = self.match(name)
        if found is not None:
            return found
        keys = self._lookup
        near = difflib.get_close_matches(normalize(name), list(keys), n=1, cutoff=0.6)
        hint = f"; did you mean '{keys[near[0]]}'?" if near else ""
        raise UnknownLabelError(f"unknown {self.name} label '{name}'{hint}")

    def class_id(self, name: str) -> int:
        return self.class_ids[self.canonical(name)]

    def by_class_id(self, class_id: int) -> str:
        for label, cid in self.class_ids.items():
            if cid == class_id:
                return label
        raise UnknownLabelError(f"unknown {self.name} class id {class_id}")

    @cached_property
    def _lookup(self) -> dict[str, str]:
        """Normalized spelling -> label, built once per set object: a user's own ``LabelSet(name="nih")``
        has its own (a cache keyed by name gave it NIH's labels)."""
        keys = {normalize(label): label for label in self.labels}
        keys.update({normalize(alias): label for alias, label in self.aliases.items()})
        return keys


_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize(name: str) -> str:
    """Lower case, one space between words, no leading or trailing blanks: the key of tolerant matching."""
    return _SEPARATORS.sub(" ", str(name).strip().lower()).replace(" / ", "/")


_NO_FINDING_ALIASES = {"No Finding": NO_FINDING, "No findings": NO_FINDING, "normal": NO_FINDING}

VINDR_LOCAL: tuple[str, ...] = (
    "Aortic enlargement",
    "Atelectasis",
    "Cardiomegaly",
    "Calcification",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung cavity",
    "Lung cyst",
    "Lung Opacity",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
)
VINDR_GLOBAL: tuple[str, ...] = (
    "COPD",
    "Lung tumor",
    "Pneumonia",
    "Tuberculosis",
    "Other diseases",
    NO_FINDING,
)

VINDR = LabelSet(
    name="vindr",
    labels=VINDR_LOCAL + VINDR_GLOBAL,
    local=VINDR_LOCAL,
    aliases={
        "Other disease": "Other diseases",  # the test labels' column
        "Nodule Mass": "Nodule/Mass",
        "Nodule or mass": "Nodule/Mass",
        "Enlarged pulmonary artery": "Enlarged PA",
        "Interstitial lung disease": "ILD",
        "Chronic obstructive pulmonary disease": "COPD",
        "Effusion": "Pleural effusion",
        "Infiltrate": "Infiltration",
        **_NO_FINDING_ALIASES,
    },
)

_CHALLENGE_CLASSES = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    NO_FINDING,
)
VINDR_CHALLENGE = LabelSet(
    name="vindr-challenge",
    labels=_CHALLENGE_CLASSES,
    local=_CHALLENGE_CLASSES[:-1],
    aliases=dict(VINDR.aliases),
    class_ids={label: i for i, label in enumerate(_CHALLENGE_CLASSES)},
)
CHALLENGE_NO_FINDING_ID = 14

NIH = LabelSet(
    name="nih",
    labels=(
        "Atelectasis",
        "Cardiomegaly",
        "Consolidation",
        "Edema",
        "Effusion",
        "Emphysema",
        "Fibrosis",
        "Hernia",
        "Infiltration",
        "Mass",
        "Nodule",
        "Pleural_Thickening",
        "Pneumonia",
        "Pneumothorax",
        NO_FINDING,
    ),
    aliases={
        "Infiltrate": "Infiltration",  # BBox_List_2017.csv
        "Pleural effusion": "Effusion",
        "Pulmonary fibrosis": "Fibrosis",
        **_NO_FINDING_ALIASES,
    },
)

CHEXPERT = LabelSet(
    name="chexpert",
    labels=(
        NO_FINDING,
        "Enlarged Cardiomediastinum",
        "Cardiomegaly",
        "Lung Lesion",
        "Lung Opacity",
        "Edema",
        "Consolidation",
        "Pneumonia",
        "Atelectasis",
        "Pneumothorax",
        "Pleural Effusion",
        "Pleural Other",
        "Fracture",
        "Support Devices",
    ),
    aliases={"Effusion": "Pleural Effusion", **_NO_FINDING_ALIASES},
)

LABEL_SETS: dict[str, LabelSet] = {s.name: s for s in (VINDR, VINDR_CHALLENGE, NIH, CHEXPERT)}


def get_label_set(name: str | LabelSet, parameter: str = "label_set") -> LabelSet:
    """The label set called ``name`` (any spelling: "VinDr Challenge", "vindr-challenge"); an unknown name
    is a :class:`ParameterError` of ``parameter``, listing the sets there are."""
    if isinstance(name, LabelSet):
        return name
    key = normalize(name).replace(" ", "-")
    if key not in LABEL_SETS:
        raise ParameterError(parameter, f"must be one of {', '.join(LABEL_SETS)} (got {name!r})")
    return LABEL_SETS[key]


def canonical(name: str, label_set: str | LabelSet) -> str:
    """Resolve any spelling of a label to its canonical name in ``label_set``."""
    return get_label_set(label_set).canonical(name)


# Mappings: for each label of the source set, the labels of the target set that mean the same finding.
# An empty tuple is an explicit "no equivalent". Only pairs that are not spellings of one name are written
# down; a label that the target set matches (tolerantly: "Pleural Effusion" is VinDr's "Pleural effusion")
# maps to that label.
_EXPLICIT: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("nih", "vindr"): {
        "Effusion": ("Pleural effusion",),
        "Fibrosis": ("Pulmonary fibrosis",),
        "Mass": ("Nodule/Mass",),
        "Nodule": ("Nodule/Mass",),
        "Pleural_Thickening": ("Pleural thickening",),
        "Hernia": (),
    },
    ("vindr", "nih"): {
        "Pleural effusion": ("Effusion",),
        "Pulmonary fibrosis": ("Fibrosis",),
        "Nodule/Mass": ("Mass", "Nodule"),
        "Pleural thickening": ("Pleural_Thickening",),
    },
    ("chexpert", "nih"): {
        "Pleural Effusion": ("Effusion",),
        "Lung Lesion": ("Mass", "Nodule"),
        "Lung Opacity": (),
    },
    ("nih", "chexpert"): {
        "Effusion": ("Pleural Effusion",),
        "Mass": ("Lung Lesion",),
        "Nodule": ("Lung Lesion",),
        "Pleural_Thickening": ("Pleural Other",),
        "Fibrosis": (),
    },
    ("chexpert", "vindr"): {
        "Enlarged Cardiomediastinum": ("Aortic enlargement",),
        "Lung Lesion": ("Nodule/Mass",),
        "Pleural Other": ("Pleural thickening",),
        "Fracture": ("Rib fracture", "Clavicle fracture"),
        "Support Devices": (),
    },
    ("vindr", "chexpert"): {
        "Pleural effusion": ("Pleural Effusion",),
        "Nodule/Mass": ("Lung Lesion",),
        "Pleural thickening": ("Pleural Other",),
        "Rib fracture": ("Fracture",),
        "Clavicle fracture": ("Fracture",),
        "Aortic enlargement": ("Enlarged Cardiomediastinum",),
    },
}


def mapping(source: str | LabelSet, target: str | LabelSet) -> dict[str, tuple[str, ...]]:
    """For every label of ``source``, the equivalent labels of ``target`` (empty tuple: unmapped)."""
    src, dst = get_label_set(source), get_label_set(target)
    explicit = _EXPLICIT.get((src.name, dst.name), {})
    # The challenge set is the VinDr set restricted to 14 classes + No finding.
    if dst.name == "vindr-challenge" and src.name != "vindr":
        via_vindr = mapping(src, "vindr")
        return {k: tuple(v for v in vs if v in dst.labels) for k, vs in via_vindr.items()}
    if src.name == "vindr-challenge":
        return {k: vs for k, vs in mapping("vindr", dst).items() if k in src.labels}
    result: dict[str, tuple[str, ...]] = {}
    for label in src.labels:
        if label in explicit:
            result[label] = explicit[label]
        else:
            same = dst.match(label)
            result[label] = (same,) if same is not None else ()
    return result


def map_label(name: str, source: str | LabelSet, target: str | LabelSet) -> tuple[str, ...]:
    """The labels of ``target`` equivalent to ``name`` of ``source``; empty when it has none."""
    src = get_label_set(source)
    return mapping(src, target)[src.canonical(name)]


def unmapped(source: str | LabelSet, target: str | LabelSet) -> tuple[str, ...]:
    """Labels of ``source`` that have no equivalent in ``target``."""
    return tuple(label for label, targets in mapping(source, target).items() if not targets)
