"""``cxrlab reports label`` and ``evaluate`` end to end (in process, through the typer app)."""

from __future__ import annotations

import codecs
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from conftest import realdata_path
from cxrlab.cli.main import app
from cxrlab.errors import CxrlabError

runner = CliRunner()


def test_label_folder_with_explanations(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "r1.txt").write_text(
        "FINDINGS: No pneumothorax. Small left effusion.\nIMPRESSION: Possible pneumonia."
    )
    (folder / "r2.txt").write_bytes(codecs.BOM_UTF16_LE + "Heart size normal.".encode("utf-16-le"))
    out = tmp_path / "out" / "labels.csv"
    result = runner.invoke(app, ["reports", "label", str(folder), "--out", str(out), "--explain"])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out, dtype=str, keep_default_na=False).set_index("report_id")
    assert table.loc["r1", "Effusion"] == "1"
    assert table.loc["r1", "Pneumothorax"] == "0"
    assert table.loc["r1", "Pneumonia"] == "-1"
    assert table.loc["r1", "Edema"] == ""  # not mentioned: blank
    assert table.loc["r2", "No finding"] == "1"
    assert "pre-negation 'no'" in table.loc["r1", "explanation"]
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temporary file left


def test_label_csv_policy_json_and_parquet(tmp_path: Path) -> None:
    src = tmp_path / "r.csv"
    src.write_text("id,report\na,Pneumonia cannot be excluded.\nb,\n")
    out = tmp_path / "o.parquet"
    args = [
        "reports",
        "label",
        str(src),
        "--out",
        str(out),
        "--labels",
        "chexpert",
        "--uncertain",
        "positive",
    ]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{") :])
    assert summary["reports"] == 2 and summary["labels"]["Pneumonia"]["positive"] == 1
    table = pd.read_parquet(out)
    assert table["Pneumonia"].tolist()[0] == 1 and pd.isna(table["Pneumonia"].tolist()[1])


def test_usage_errors(tmp_path: Path) -> None:
    src = tmp_path / "r.csv"
    src.write_text("report\nNo effusion.\n")
    bad_suffix = runner.invoke(app, ["reports", "label", str(src), "--out", str(tmp_path / "o.xlsx")])
    assert isinstance(bad_suffix.exception, CxrlabError) and bad_suffix.exception.exit_code == 2
    assert "must end in .csv" in str(bad_suffix.exception)
    bad_set = runner.invoke(
        app, ["reports", "label", str(src), "--out", str(tmp_path / "o.csv"), "--labels", "x"]
    )
    assert isinstance(bad_set.exception, CxrlabError) and bad_set.exception.exit_code == 2
    assert "--labels must be one of nih, chexpert, vindr" in str(bad_set.exception)
    assert not (tmp_path / "o.csv").exists()


def test_missing_input_is_one_line_and_exit_1(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxrlab.cli.main",
            "reports",
            "label",
            str(tmp_path / "nope.csv"),
            "-o",
            "x.csv",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1
    assert "no such file" in out.stderr and "Traceback" not in out.stderr


def test_evaluate_command() -> None:
    folder = realdata_path("reports")
    args = [
        "reports",
        "evaluate",
        str(folder / "indiana_reports_dev.csv"),
        str(folder / "openi_gld_std14_dev.csv"),
    ]
    result = runner.invoke(app, [*args, "--split", "holdout", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["split"] == "holdout" and 0.0 < scores["micro_f1"] <= 1.0
    assert {row["label"] for row in scores["labels"]} >= {"Atelectasis", "Hernia", "micro"}
