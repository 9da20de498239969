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
