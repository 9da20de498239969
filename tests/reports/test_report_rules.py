"""Every rule of the labeler on sentences written for it (NIH list unless said otherwise)."""

from __future__ import annotations

import pytest

from cxrlab.reports import ReportLabeler
from cxrlab.taxonomy import NO_FINDING


@pytest.fixture(scope="module")
def nih() -> ReportLabeler:
    return ReportLabeler("nih")


@pytest.fixture(scope="module")
def chexpert() -> ReportLabeler:
    return ReportLabeler("chexpert")


def one(labeler: ReportLabeler, text: str, label: str) -> int | None:
    return labeler.label(text).get(label)


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        # affirmed
        ("Small left pleural effusion.", "Effusion", 1),
        ("Stable mild cardiomegaly.", "Cardiomegaly", 1),
        ("The heart is mildly enlarged.", "Cardiomegaly", 1),
        # pre-negation
        ("No pneumothorax.", "Pneumothorax", 0),
        ("Lungs are clear without focal consolidation.", "Consolidation", 0),
        ("The lungs are free of consolidation.", "Consolidation", 0),
        ("Negative for pneumothorax.", "Pneumothorax", 0),
        ("No evidence of focal consolidation, pneumothorax, or pleural effusion.", "Effusion", 0),
        ("Interval resolution of the right pleural effusion.", "Effusion", 0),
        # post-negation
        ("Pneumothorax is not seen.", "Pneumothorax", 0),
        ("The previously seen effusion has resolved.", "Effusion", 0),
        ("Pleural effusion, resolved.", "Effusion", 0),
        ("Effusions are no longer seen.", "Effusion", 0),
        ("Previously seen nodule is no longer visible.", "Nodule", 0),
        ("The nodules on the previous exam are not definitely seen.", "Nodule", 0),
        ("Interval clearing of the right lower lobe pneumonia.", "Pneumonia", 0),
        # negation inside a phrase with a gap
        ("The heart is not enlarged.", "Cardiomegaly", 0),
        # pre-uncertainty
        ("Findings may represent atelectasis.", "Atelectasis", -1),
        ("Possible right lower lobe pneumonia.", "Pneumonia", -1),
        ("Opacity suggestive of pneumonia.", "Pneumonia", -1),
        # post-uncertainty
        ("Pneumonia cannot be excluded.", "Pneumonia", -1),
        ("A small effusion is not excluded.", "Effusion", -1),
        ("Maybe due to pulmonary fibrosis.", "Fibrosis", -1),
        ("Perhaps a small left effusion.", "Effusion", -1),
        ("However, true pulmonary nodule is a possibility.", "Nodule", -1),
        ("Pulmonary edema difficult to entirely exclude.", "Edema", -1),
        ("Pneumonia cannot be entirely excluded.", "Pneumonia", -1),
        # looked for, and conditional on the clinical picture
        ("Lateral view limits evaluation for an effusion.", "Effusion", -1),
        ("Evaluation for pleural fluid is limited.", "Effusion", -1),
        ("In the appropriate clinical setting this is compatible with pneumonia.", "Pneumonia", -1),
        # "but" ends a scope, except inside a longer trigger
        ("Infiltrate is less likely but not entirely excluded.", "Infiltration", -1),
        ("A small effusion is unlikely but not excluded.", "Effusion", -1),
        # a negation before an evidence trigger negates it
        ("No focal airspace opacity to suggest pneumonia.", "Pneumonia", 0),
        ("No findings suspicious for pneumonia.", "Pneumonia", 0),
        # pseudo-negation
        ("No change in the small left pleural effusion.", "Effusion", 1),
        ("No significant change in cardiomegaly.", "Cardiomegaly", 1),
        ("There is not only cardiomegaly but also edema.", "Edema", 1),
        ("Without interval change of the right pneumothorax.", "Pneumothorax", 1),
        # scope ends at a termination
        ("No pneumothorax, but a small effusion is present.", "Effusion", 1),
        ("No consolidation; small left effusion.", "Effusion", 1),
        ("No pneumothorax, however there is right lower lobe atelectasis.", "Atelectasis", 1),
        # ... and at the sentence
        ("No pneumothorax. Small effusion.", "Effusion", 1),
        ("No pneumothorax.Small effusion.", "Effusion", 1),
        # the nearest trigger decides
        ("No pneumothorax, possible small effusion.", "Effusion", -1),
        ("Possible pneumonia without effusion.", "Effusion", 0),
        # a window keeps "normal" local
        ("Normal heart size with small right pleural effusion.", "Effusion", 1),
    ],
)
def test_rule(nih: ReportLabeler, text: str, label: str, expected: int) -> None:
    assert one(nih, text, label) == expected


def test_not_mentioned_is_absent(nih: ReportLabeler) -> None:
    assert "Pneumothorax" not in nih.label("Small left pleural effusion.")


def test_priority_positive_over_uncertain_over_negative(nih: ReportLabeler) -> None:
    assert one(nih, "No effusion on the left. Small right effusion.", "Effusion") == 1
    assert one(nih, "No effusion on the left. Possible small right effusion.", "Effusion") == -1
    assert one(nih, "Possible right effusion. Small left effusion.", "Effusion") == 1


def test_no_finding(nih: ReportLabeler) -> None:
    assert nih.label("No pneumothorax or effusion.")[NO_FINDING] == 1
    assert nih.label("Lungs are clear.")[NO_FINDING] == 1
    assert NO_FINDING not in nih.label("Small left effusion.")
    assert NO_FINDING not in nih.label("Pneumonia cannot be excluded.")  # uncertain is a finding
    assert nih.label("") == {}  # an empty report says nothing, not "normal"
    assert nih.label("   \n ") == {}


def test_support_devices_do_not_stop_no_finding(chexpert: ReportLabeler) -> None:
    values = chexpert.label("Endotracheal tube in place. No pneumothorax.")
    assert values["Support Devices"] == 1
    assert values[NO_FINDING] == 1


def test_normal_anatomy_counts_only_when_negated(chexpert: ReportLabeler) -> None:
    assert one(chexpert, "Heart size normal.", "Cardiomegaly") == 0
    assert one(chexpert, "The heart is normal in size.", "Cardiomegaly") == 0
    assert one(chexpert, "Heart size is stable.", "Cardiomegaly") is None


def test_uncertain_policies(nih: ReportLabeler) -> None:
    text = "Pneumonia cannot be excluded. No effusion."
    assert nih.label(text, uncertain="keep") == {"Effusion": 0, "Pneumonia": -1}
    assert nih.label(text, uncertain="positive") == {"Effusion": 0, "Pneumonia": 1}
    assert nih.label(text, uncertain="negative") == {"Effusion": 0, "Pneumonia": 0}
    # No finding is decided before the policy: an uncertain finding is still a finding
    assert NO_FINDING not in nih.label(text, uncertain="negative")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Atelectasis versus pneumonia.", "Atelectasis"),
        ("Atelectasis versus pneumonia.", "Pneumonia"),
        ("Left basilar atelectasis vs scarring.", "Atelectasis"),
        ("Bibasilar airspace disease, either atelectasis or infiltrate.", "Infiltration"),
        ("Bibasilar airspace disease, either atelectasis or infiltrate.", "Atelectasis"),
    ],
)
def test_differential_is_uncertain_unless_told_positive(text: str, label: str) -> None:
    """'versus' is an uncertainty trigger; MeSH coding (Open-i) codes both candidates: the option."""
    assert one(ReportLabeler("nih"), text, label) == -1
    assert one(ReportLabeler("nih", differential="positive"), text, label) == 1
    if label != "Infiltration":  # not a CheXpert label
        assert one(ReportLabeler("chexpert"), text, label) == -1


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        # a hedge before the differential still decides
        ("Findings may represent atelectasis versus infiltrate.", "Atelectasis", -1),
        ("Findings may represent atelectasis versus infiltrate.", "Infiltration", -1),
        ("Question left basilar atelectasis versus infiltrate.", "Infiltration", -1),
        # a negation too
        ("No pneumothorax versus skin fold is seen.", "Pneumothorax", 0),
        # the differential does not reach past a termination
        ("Atelectasis versus scarring; no pneumonia.", "Pneumonia", 0),
    ],
)
def test_differential_yields_to_other_triggers(
    nih: ReportLabeler, text: str, label: str, expected: int
) -> None:
    assert one(nih, text, label) == expected


def test_gapped_phrase_does_not_hide_other_mentions() -> None:
    values = ReportLabeler("nih", differential="uncertain").label(
        "Small pleural effusion versus minimal pleural thickening."
    )
    assert values["Effusion"] == -1
    assert values["Pleural_Thickening"] == -1


def test_gapped_phrase_does_not_cross_a_termination(nih: ReportLabeler) -> None:
    assert "Cardiomegaly" not in nih.label("Heart normal but aorta enlarged.")


def test_an_enlarged_cardiac_silhouette_is_a_sign_not_cardiomegaly(nih: ReportLabeler) -> None:
    assert "Cardiomegaly" not in nih.label("The cardiac silhouette is mildly enlarged.")
    assert "Cardiomegaly" not in nih.label("Stable enlarged cardiac silhouette.")
    assert nih.label("The cardiac silhouette is not enlarged.")["Cardiomegaly"] == 0
    assert nih.label("Enlarged cardiac silhouette due to cardiomegaly.")["Cardiomegaly"] == 1


def test_mass_is_the_finding_not_a_diagnosis(nih: ReportLabeler) -> None:
    values = nih.label("Multiple nodules in both lungs consistent with neoplasm.")
    assert values["Nodule"] == 1 and "Mass" not in values
    assert nih.label("Right upper lobe mass lesion, suspicious for neoplasm.")["Mass"] == 1


def test_ignored_look_alikes(nih: ReportLabeler) -> None:
    assert "Mass" not in nih.label("Mass effect on the trachea.")
    assert "Emphysema" not in nih.label("Subcutaneous emphysema in the left chest wall.")
    assert "Fibrosis" not in nih.label("Bronchiectasis and scarring from cystic fibrosis.")
    assert nih.label("Pulmonary fibrosis in a patient with cystic fibrosis.")["Fibrosis"] == 1
    assert "Pleural_Thickening" not in nih.label("Bibasilar pleural scarring.")
    assert "Pleural_Thickening" not in nih.label("Left apical pleural-parenchymal scarring.")
    assert nih.label("Left pleural scarring and thickening.")["Pleural_Thickening"] == 1


def test_mentions_carry_the_explanation(nih: ReportLabeler) -> None:
    (m,) = nih.mentions("Pneumothorax is not seen.")
    assert (m.label, m.status, m.rule, m.trigger) == ("Pneumothorax", 0, "post-negation", "is not seen")
    assert "post-negation 'is not seen'" in m.explain()
