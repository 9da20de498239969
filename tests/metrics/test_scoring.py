"""``cxrlab score`` and ``cxrlab submission`` on hand-built tables: truth selection, class 14, validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlab.errors import UsageError
from cxrlab.metrics.detection import average_precision
from cxrlab.metrics.scoring import challenge_truth, score, select_truth, simulate_predictions
from cxrlab.metrics.submission import SubmissionError, make_submission, write_submission
from cxrlab.tables import load_tables, save_tables

IDS = [f"{i:032x}" for i in range(6)]
NAN = float("nan")


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True,
                          check=False, env={"CXRLAB_NO_PROGRESS": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip


def _truth(tmp_path: Path) -> Path:
    images = pd.DataFrame({"image_id": IDS, "dataset": "vindr", "split": ["test"] * 5 + ["train"],
                           "patient_id": None, "path": [f"test/{i}.dicom" for i in IDS], "width": 2000,
                           "height": 2500, "sex": None, "age": np.nan, "view": "PA"})  # fmt: skip
    rows = [
        (IDS[0], "consensus", "Cardiomegaly", 800, 1200, 1400, 1600),
        (IDS[0], "consensus", "Aortic enlargement", 900, 500, 1100, 800),
        (IDS[0], "consensus", "Pneumonia", NAN, NAN, NAN, NAN),  # global label: not a challenge class
        (IDS[1], "consensus", "No finding", NAN, NAN, NAN, NAN),
        (IDS[2], "consensus", "Nodule/Mass", 300, 300, 400, 400),
        (IDS[2], "consensus", "Nodule/Mass", 1500, 300, 1600, 420),
        (IDS[3], "consensus", "COPD", NAN, NAN, NAN, NAN),  # no box at all: class 14
        (IDS[4], "consensus", "Pleural effusion", 100, 1800, 700, 2400),
        (IDS[5], "R1", "Cardiomegaly", 800, 1200, 1400, 1600),
        (IDS[5], "R2", "No finding", NAN, NAN, NAN, NAN),
    ]
    findings = pd.DataFrame(rows, columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max"])
    findings["score"] = 1.0
    return save_tables(tmp_path / "truth", images, findings)


def _perfect_submission(tmp_path: Path, truth: Path) -> Path:
    tables = load_tables(truth)
    sel = select_truth(tables)
    boxes, _ = challenge_truth(sel)
    lines = ["image_id,PredictionString"]
    for image_id, g in boxes.groupby("image_id"):
        parts = [f"{int(r.label)} 1 {r.x_min:g} {r.y_min:g} {r.x_max:g} {r.y_max:g}" for r in g.itertuples()]
        lines.append(f"{image_id},{' '.join(parts)}")
    path = tmp_path / "perfect.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_truth_selection_prefers_consensus_and_asks_when_ambiguous(tmp_path: Path) -> None:
    tables = load_tables(_truth(tmp_path))
    sel = select_truth(tables)
    assert sel.reader == "consensus" and len(sel.images) == 5
    assert any("no truth row by consensus" in n for n in sel.notes)
    assert select_truth(tables, reader="R1").images["image_id"].tolist() == [IDS[5]]
    with pytest.raises(UsageError, match=r"^truth_reader is needed: .*2 readers"):
        select_truth(tables, split="train")
    with pytest.raises(UsageError, match=r"^truth_reader R9: no rows in the truth tables"):
        select_truth(tables, reader="R9")


def test_challenge_truth_maps_classes_and_makes_class_14(tmp_path: Path) -> None:
    sel = select_truth(load_tables(_truth(tmp_path)))
    boxes, notes = challenge_truth(sel)
    by_image = boxes.groupby("image_id")["label"].apply(sorted).to_dict()
    assert by_image[IDS[0]] == [0, 3]  # Aortic enlargement, Cardiomegaly; Pneumonia dropped
    assert by_image[IDS[1]] == [14] and by_image[IDS[3]] == [14]
    assert by_image[IDS[2]] == [8, 8] and by_image[IDS[4]] == [10]
    normal = boxes[boxes["label"] == 14][["x_min", "y_min", "x_max", "y_max"]].to_numpy()
    assert (normal == [0, 0, 1, 1]).all()
    assert any("outside the 15 classes" in n and "COPD 1" in n and "Pneumonia 1" in n for n in notes)


def test_perfect_submission_scores_one_and_the_cli_prints_the_table(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    sub = _perfect_submission(tmp_path, truth)
    result = score(truth, sub, metric="map40")
    assert result.mean == 1.0
    table = result.table.set_index("label")
    assert np.isnan(table.loc["ILD", "ap"]) and table.loc["No finding", "ap"] == 1.0
    out = _cxrlab("score", "--truth", str(truth), "--pred", str(sub))
    assert out.returncode == 0, out.stderr
    assert "mAP: 1" in out.stdout and "n/a" in out.stdout and "Cardiomegaly" in out.stdout
    out = _cxrlab("score", "--truth", str(truth), "--pred", str(sub), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mAP"] == 1.0 and len(data["classes"]) == 15
    assert data["classes"][5]["label"] == "ILD" and data["classes"][5]["ap"] is None


def test_map40_of_a_findings_table_equals_the_detection_module(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    preds = pd.DataFrame(
        [
            (IDS[0], "m", "Cardiomegaly", 820, 1180, 1420, 1590, 0.9),  # hit
            (IDS[0], "m", "Cardiomegaly", 0, 0, 100, 100, 0.95),  # false positive
            (IDS[1], "m", "No finding", NAN, NAN, NAN, NAN, 0.7),  # 14 with 0 0 1 1: hit
            (IDS[2], "m", "Nodule/Mass", 310, 310, 400, 400, 0.6),
            (IDS[3], "m", "ILD", 10, 10, 50, 50, 0.4),
            (IDS[4], "m", "Pleural effusion", 100, 1800, 300, 2000, 0.8),  # IoU 1/9: miss
        ],
        columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"],
    )
    path = tmp_path / "preds.parquet"
    preds.to_parquet(path)
    result = score(truth, path, metric="map40")
    expected_truth = pd.DataFrame({"image_id": [IDS[0], IDS[0], IDS[1], IDS[2], IDS[2], IDS[3], IDS[4]],
                                   "label": [3, 0, 14, 8, 8, 14, 10],
                                   "x_min": [800, 900, 0, 300, 1500, 0, 100],
                                   "y_min": [1200, 500, 0, 300, 300, 0, 1800],
                                   "x_max": [1400, 1100, 1, 400, 1600, 1, 700],
                                   "y_max": [1600, 800, 1, 400, 420, 1, 2400]})  # fmt: skip
    p = preds.assign(label=[3, 3, 14, 8, 5, 10])
    p.loc[2, ["x_min", "y_min", "x_max", "y_max"]] = [0, 0, 1, 1]
    expected = average_precision(expected_truth, p, iou_threshold=0.4, classes=list(range(15)))
    assert result.mean == pytest.approx(expected.mean)
    table = result.table.set_index("label")
    assert table.loc["Cardiomegaly", "ap"] == pytest.approx(0.5)  # FP first, then the hit
    assert table.loc["No finding", "ap"] == pytest.approx(0.5)  # one of two normal images found
    assert table.loc["Pleural effusion", "ap"] == 0.0


def test_invalid_predictions_exit_1_with_a_line_per_problem(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,PredictionString\n"
                   f"{IDS[0]},3 1.2 0 0 10 10\n"
                   f"{IDS[0]},14 1 0 0 1 1\n"
                   f"{IDS[1]},3 0.5 0 0 10\n"
                   f"{IDS[2]},3 0.5 1900 0 2100 10\n"
                   f"nosuchimage,14 1 0 0 1 1\n")  # fmt: skip
    out = _cxrlab("score", "--truth", str(truth), "--pred", str(bad))
    assert out.returncode == 1
    err = out.stderr
    for needle in ("line 2", "confidence 1.2", "line 3", "duplicate", "line 4", "not a multiple of 6",
                   "line 5", "outside the 2000 x 2500", "line 6", "unknown image id", IDS[3], IDS[4],
                   "missing image"):  # fmt: skip
        assert needle in err, (needle, err)
    assert "Traceback" not in err


def test_findings_predictions_are_checked_too(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    preds = pd.DataFrame(
        [
            (IDS[0], "m", "Cardiomegaly", 820, 1180, 1420, 1590, 0.9),
            (IDS[0], "m", "Cardiomegaly", 820, 1180, 1420, 1590, 0.9),  # duplicate
            (IDS[1], "m", "Nodule/Mass", 10, 10, 5000, 50, 0.5),  # too wide
            (IDS[2], "m", "Nodule/Mass", 10, 10, 20, 20, 1.5),  # bad score
        ],
        columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"],
    )
    path = tmp_path / "preds.csv"
    preds.to_csv(path, index=False)
    with pytest.raises(SubmissionError) as info:
        score(truth, path)
    message = str(info.value)
    assert "row 2" in message and "duplicate of row 1" in message
    assert "row 3" in message and "outside the 2000 x 2500" in message
    assert "row 4" in message and "confidence 1.5" in message
    assert f"{IDS[3]}: missing image" in message
    # --allow-missing scores the remaining problems away only when the rows are valid.
    path2 = tmp_path / "ok.csv"
    preds.iloc[[0]].to_csv(path2, index=False)
    result = score(truth, path2, allow_missing=True)
    assert result.table.set_index("label").loc["Cardiomegaly", "ap"] == 1.0


def test_auroc_metric_reports_undefined_labels_as_na(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    rows = []
    for k, image_id in enumerate(IDS[:5]):
        rows.append((image_id, "m", "Cardiomegaly", NAN, NAN, NAN, NAN, 0.9 if k == 0 else 0.1 * k))
        rows.append((image_id, "m", "Nodule/Mass", NAN, NAN, NAN, NAN, 0.2 + 0.1 * (k == 2)))
        rows.append((image_id, "m", "Lung cavity", NAN, NAN, NAN, NAN, 0.3))  # never in the truth
    preds = pd.DataFrame(rows, columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max",
                                        "score"])  # fmt: skip
    path = tmp_path / "preds.parquet"
    preds.to_parquet(path)
    result = score(truth, path, metric="auroc", n_boot=50, split="test")
    table = result.table.set_index("label")
    assert table.loc["Cardiomegaly", "auroc"] == 1.0 and table.loc["Nodule/Mass", "auroc"] == 1.0
    assert np.isnan(table.loc["Lung cavity", "auroc"])
    out = _cxrlab("score", "--truth", str(truth), "--pred", str(path), "--metric", "auroc",
                  "--bootstrap", "20", "--split", "test")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "Lung cavity" in out.stdout and "n/a" in out.stdout and "macro" in out.stdout
    assert "AUROC undefined (n/a), not 0.5" in out.stderr


def test_iobb_metric(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    preds = pd.DataFrame(
        [
            (IDS[0], "m", "Cardiomegaly", 900, 1300, 1000, 1400, 0.9),  # inside: IoBB 1
            (IDS[2], "m", "Nodule/Mass", 350, 350, 450, 450, 0.9),  # IoBB 0.25 with the first nodule
        ],
        columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"],
    )
    path = tmp_path / "preds.parquet"
    preds.to_parquet(path)
    result = score(truth, path, metric="iobb", allow_missing=True)
    table = result.table.set_index("label")
    assert table.loc["Cardiomegaly", "T=0.7"] == 1.0
    assert table.loc["Nodule/Mass", "T=0.2"] == 0.5 and table.loc["Nodule/Mass", "T=0.3"] == 0.0
    assert table.loc["Aortic enlargement", "T=0.1"] == 0.0


def test_submission_make_then_check_then_score(tmp_path: Path) -> None:
    truth = _truth(tmp_path)
    preds = pd.DataFrame(
        [(IDS[0], "m", "Cardiomegaly", 820.4, 1180.6, 1420.2, 1590.0, 0.9)],
        columns=["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"],
    )
    pred_path = tmp_path / "preds.parquet"
    preds.to_parquet(pred_path)
    out_csv = tmp_path / "submission.csv"
    made = _cxrlab("submission", "make", str(pred_path), "--out", str(out_csv), "--images", str(truth),
                   "--split", "test")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "5 images" in made.stdout and "4 images without prediction" in made.stdout
    written = pd.read_csv(out_csv, dtype=str)
    assert written["image_id"].tolist() == IDS[:5]
    assert written["PredictionString"].iloc[0] == "3 0.9 820 1181 1420 1590"
    checked = _cxrlab("submission", "check", str(out_csv), "--truth", str(truth), "--split", "test")
    assert checked.returncode == 0, checked.stderr
    scored = _cxrlab("score", "--truth", str(truth), "--pred", str(out_csv), "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["mAP"] is not None
    incomplete = tmp_path / "incomplete.csv"
    write_submission(make_submission(preds)[0], incomplete)
    bad = _cxrlab("submission", "check", str(incomplete), "--truth", str(truth), "--split", "test")
    assert bad.returncode == 1 and bad.stderr.count("missing image") == 4


def test_simulated_predictions_are_seeded_and_imperfect(tmp_path: Path) -> None:
    sel = select_truth(load_tables(_truth(tmp_path)), split="test")
    a = simulate_predictions(sel, seed=3)
    b = simulate_predictions(sel, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(simulate_predictions(sel, seed=4))
    assert set(a["image_id"]) == set(sel.images["image_id"])
    assert a["score"].between(0, 1).all()


def test_demo_step_prints_the_map_table_and_auroc(tmp_path: Path) -> None:
    from rich.console import Console

    from cxrlab.cli.demo import DemoContext, step_metrics

    console = Console(record=True, width=140)
    ctx = DemoContext(work=tmp_path / "demo", images=6, seed=0, console=console)
    ctx.paths["vindr_tables"] = _truth(tmp_path)
    step_metrics(ctx)
    text = console.export_text()
    assert "mAP:" in text and "macro AUROC:" in text and "No finding" in text and "95% CI" in text
    assert (tmp_path / "demo" / "metrics" / "submission.csv").is_file()
