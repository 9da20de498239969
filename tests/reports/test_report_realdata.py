"""Real reports: Open-i (Indiana) against NegBio's gold, and the CheXpert labeler's own sample output."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import realdata_path
from cxrlab.reports import ReportLabeler, evaluate_openi, read_reports

MIN_MICRO_F1 = 0.90  # what NIH reported for its own mining pipeline on Open-i (ChestX-ray8, CVPR 2017)


@pytest.fixture(scope="module")
def openi() -> tuple[str, str]:
    folder = realdata_path("reports")
    return str(folder / "indiana_reports_dev.csv"), str(folder / "openi_gld_std14_dev.csv")


def test_openi_micro_f1(openi: tuple[str, str]) -> None:
    result = evaluate_openi(*openi)
    assert result.reports == 3080
    scored = [s.label for s in result.scored]
    assert len(scored) == 13 and "Hernia" not in scored
    assert result.micro.f1 >= MIN_MICRO_F1, result.to_frame().round(3).to_string()


def test_openi_generalises_to_the_holdout_part(openi: tuple[str, str]) -> None:
    """The phrase lists were written looking at errors of the dev part only (a hash split by report id)."""
    dev = evaluate_openi(*openi, split="dev")
    holdout = evaluate_openi(*openi, split="holdout")
    assert dev.reports + holdout.reports == 3080
    assert holdout.micro.f1 >= MIN_MICRO_F1
    assert holdout.micro.f1 > dev.micro.f1 - 0.05


def test_chexpert_labeler_samples_match_its_output() -> None:
    folder = realdata_path("reports", "chexpert_labeler_samples")
    reports = read_reports(folder / "sample_reports.csv")
    assert len(reports) == 4  # headerless one-column CSV
    ours = ReportLabeler("chexpert").label_reports(reports["text"], reports["report_id"])
    theirs = pd.read_csv(folder / "labeled_reports.csv").drop(columns="Reports")
    theirs = theirs.rename(columns={"No Finding": "No finding"})
    assert list(ours.columns[1:]) == list(theirs.columns)
    for column in theirs.columns:
        expected = theirs[column].astype("Int8")
        assert ours[column].reset_index(drop=True).equals(expected), column
