"""Sections and sentences, and that the labeler skips context sections."""

from __future__ import annotations

from cxrlab.reports import ReportLabeler, split_sections, split_sentences


def test_sections_by_heading() -> None:
    text = "INDICATION: rule out pneumonia.\nFINDINGS: Clear lungs.\nIMPRESSION: Normal chest."
    sections = split_sections(text)
    assert [s.name for s in sections] == ["indication", "findings", "impression"]
    assert text[sections[1].start : sections[1].end].strip() == "Clear lungs."


def test_heading_after_a_sentence_and_lower_case() -> None:
    text = "findings: no effusion. impression: normal."
    assert [s.name for s in split_sections(text)] == ["findings", "impression"]
    mid = "Heart size normal. IMPRESSION: no acute disease."
    assert [s.name for s in split_sections(mid)] == ["", "impression"]


def test_text_without_headings_is_one_section() -> None:
    assert [(s.name, s.start, s.end) for s in split_sections("No effusion.")] == [("", 0, 12)]
    # a colon that is not a known heading does not start a section
    assert [s.name for s in split_sections("Chest: four images. Mild cardiomegaly.")] == [""]


def test_sentences() -> None:
    text = "Heart normal. Nodule 1.5 cm in size.No effusion!\n\n1. Atelectasis\n2. Edema"
    pieces = [text[s:e].strip() for s, e in split_sentences(text) if text[s:e].strip()]
    assert pieces == ["Heart normal.", "Nodule 1.5 cm in size.", "No effusion!", "1. Atelectasis", "2. Edema"]
    # the pieces cover the whole text
    assert "".join(text[s:e] for s, e in split_sentences(text)) == text


def test_abbreviations_do_not_split() -> None:
    text = "Film at 7 a.m. today shows no effusion."
    assert len(split_sentences(text)) == 1


def test_context_sections_are_skipped() -> None:
    labeler = ReportLabeler("nih")
    text = "INDICATION: Pneumonia?\nHISTORY: pneumothorax last year.\nFINDINGS: Lungs are clear."
    values = labeler.label(text)
    assert "Pneumonia" not in values and "Pneumothorax" not in values
    everything = ReportLabeler("nih", skip_sections=())
    assert everything.label(text)["Pneumothorax"] == 1


def test_negation_does_not_cross_sections() -> None:
    labeler = ReportLabeler("nih")
    text = "FINDINGS: No pneumothorax\nIMPRESSION: pleural effusion"
    assert labeler.label(text)["Effusion"] == 1
