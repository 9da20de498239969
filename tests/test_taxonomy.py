from __future__ import annotations

import pytest

from cxrlab import taxonomy
from cxrlab.taxonomy import NIH, VINDR, VINDR_CHALLENGE, UnknownLabelError


def test_label_set_sizes() -> None:
    assert len(VINDR.local) == 22
    assert len(VINDR.global_labels) == 6
    assert len(NIH.findings) == 14
    assert len(VINDR_CHALLENGE) == 15
    assert VINDR_CHALLENGE.class_id("No finding") == taxonomy.CHALLENGE_NO_FINDING_ID
    assert VINDR_CHALLENGE.class_id("Aortic enlargement") == 0
    assert VINDR_CHALLENGE.by_class_id(13) == "Pulmonary fibrosis"
    assert set(VINDR_CHALLENGE.labels) <= set(VINDR.labels)


@pytest.mark.parametrize(
    ("spelling", "label_set", "expected"),
    [
        pytest.param("Infiltrate", "nih", "Infiltration", id="nih-bbox-spelling"),
        pytest.param("pleural thickening", "nih", "Pleural_Thickening", id="underscore"),
        pytest.param("No Finding", "nih", "No finding", id="nih-normal"),
        pytest.param("Other disease", "vindr", "Other diseases", id="vindr-test-column"),
        pytest.param("  lung_opacity ", "vindr", "Lung Opacity", id="case-and-blanks"),
        pytest.param("nodule / mass", "vindr", "Nodule/Mass", id="slash-spacing"),
        pytest.param("enlarged-pa", "vindr", "Enlarged PA", id="hyphen"),
    ],
)
def test_tolerant_matching(spelling: str, label_set: str, expected: str) -> None:
    assert taxonomy.canonical(spelling, label_set) == expected


def test_unknown_label_suggests_near_match() -> None:
    with pytest.raises(UnknownLabelError, match="did you mean 'Pleural effusion'"):
        VINDR.canonical("Pleurl efusion")
    with pytest.raises(UnknownLabelError, match="unknown nih label 'Fracture'"):
        NIH.canonical("Fracture")


@pytest.mark.parametrize(
    ("name", "label_set"),
    [
        pytest.param("Mass", "vindr", id="mass-is-not-nodule-mass"),
        pytest.param("Nodule", "vindr", id="nodule-is-not-nodule-mass"),
        pytest.param("Nodule/Mass", "nih", id="nodule-mass-is-two-nih-labels"),
        pytest.param("Opacity", "vindr", id="no-prefix-matching"),
    ],
)
def test_matching_is_not_a_mapping(name: str, label_set: str) -> None:
    """Matching resolves spellings of one finding only; a broader or narrower finding of another set (NIH
    ``Mass`` vs VinDr ``Nodule/Mass``) goes through :func:`map_label`, never silently through a match."""
    ls = taxonomy.get_label_set(label_set)
    assert ls.match(name) is None and name not in ls
    with pytest.raises(UnknownLabelError):
        ls.canonical(name)


def test_nih_to_vindr_mapping() -> None:
    assert taxonomy.map_label("Effusion", "nih", "vindr") == ("Pleural effusion",)
    assert taxonomy.map_label("Mass", "nih", "vindr") == ("Nodule/Mass",)
    assert taxonomy.map_label("Nodule", "nih", "vindr") == ("Nodule/Mass",)
    assert taxonomy.map_label("Cardiomegaly", "nih", "vindr") == ("Cardiomegaly",)
    assert taxonomy.map_label("Hernia", "nih", "vindr") == ()
    assert "Hernia" in taxonomy.unmapped("nih", "vindr")
    # every NIH label is covered, mapped or explicitly unmapped
    assert set(taxonomy.mapping("nih", "vindr")) == set(NIH.labels)


def test_vindr_to_nih_is_one_to_many_and_explicit() -> None:
    assert taxonomy.map_label("Nodule/Mass", "vindr", "nih") == ("Mass", "Nodule")
    assert taxonomy.map_label("Rib fracture", "vindr", "nih") == ()
    assert taxonomy.map_label("No finding", "vindr", "nih") == ("No finding",)


def test_challenge_mapping_restricts_to_its_classes() -> None:
    m = taxonomy.mapping("nih", "vindr-challenge")
    assert m["Effusion"] == ("Pleural effusion",)
    assert m["Edema"] == ()  # Edema is a VinDr label but not a challenge class
    assert taxonomy.mapping("vindr", "vindr-challenge")["Rib fracture"] == ()


def test_chexpert_to_vindr_maps_what_vindr_names() -> None:
    """Pleural Effusion, Lung Lesion and Fracture used to map to nothing (exact-string fallback)."""
    m = taxonomy.mapping("chexpert", "vindr")
    assert m["Pleural Effusion"] == ("Pleural effusion",)
    assert m["Lung Lesion"] == ("Nodule/Mass",)
    assert set(m["Fracture"]) == {"Rib fracture", "Clavicle fracture"}
    assert taxonomy.unmapped("chexpert", "vindr") == ("Support Devices",)


@pytest.mark.parametrize("source", ["nih", "vindr", "chexpert"])
@pytest.mark.parametrize("target", ["nih", "vindr", "chexpert", "vindr-challenge"])
def test_every_mapping_is_to_real_labels_and_keeps_same_named_ones(source: str, target: str) -> None:
    src, dst = taxonomy.get_label_set(source), taxonomy.get_label_set(target)
    m = taxonomy.mapping(src, dst)
    assert set(m) == set(src.labels)
    for label, targets in m.items():
        assert all(t in dst.labels for t in targets), (label, targets)
        same = dst.match(label)
        if same is not None and source != target:
            assert same in targets, f"{source} {label} should map to {target} {same}"


def test_a_users_label_set_named_like_a_shipped_one_keeps_its_own_labels() -> None:
    mine = taxonomy.LabelSet(name="nih", labels=("Opacity", "No finding"), aliases={"shadow": "Opacity"})
    assert mine.match("shadow") == "Opacity" and mine.match("opacity") == "Opacity"
    assert mine.match("Atelectasis") is None  # NIH's label, not this set's
    assert NIH.match("opacity") is None and NIH.match("Atelectasis") == "Atelectasis"
    with pytest.raises(UnknownLabelError):
        mine.canonical("Effusion")
