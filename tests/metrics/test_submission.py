"""The challenge submission CSV: every problem reported once per line, and a written file that reads back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlab.metrics.submission import (
    NORMAL_STRING,
    SubmissionError,
    make_submission,
    parse_prediction_string,
    raise_problems,
    read_submission,
    write_submission,
)

IMAGES = pd.DataFrame({"image_id": ["a" * 32, "b" * 32, "c" * 32], "width": [2000, 2000, 3000],
                       "height": [2500, 2500, 3000]})  # fmt: skip
A, B, C = IMAGES["image_id"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "submission.csv"
    path.write_text(text)
    return path


def test_a_valid_submission_parses_into_one_row_per_prediction(tmp_path: Path) -> None:
    text = (f"image_id,PredictionString\n{A},0 0.9 10 20 300 400 3 0.5 5 5 50 50\n"
            f"{B},{NORMAL_STRING}\n{C},14 0.7 0 0 1 1 8 0.25 1.5 2.5 100.5 200\n")  # fmt: skip
    path = _write(tmp_path, text)
    preds, problems = read_submission(path, images=IMAGES, expected=IMAGES["image_id"])
    assert problems == []
    assert len(preds) == 5
    assert preds["class_id"].tolist() == [0, 3, 14, 14, 8]
    assert preds["label"].tolist()[:2] == ["Aortic enlargement", "Cardiomegaly"]
    assert preds.loc[4, ["x_min", "y_min", "x_max", "y_max"]].tolist() == [1.5, 2.5, 100.5, 200.0]


def test_every_problem_is_listed_with_its_line_and_image(tmp_path: Path) -> None:
    lines = [
        "image_id,PredictionString",
        f"{A},0 0.9 10 20 300",  # 5 numbers
        f"{A},{NORMAL_STRING}",  # duplicate row
        f"{B},0 1.5 10 20 300 400 3 0.5 -5 5 50 50 2 0.5 10 10 2100 50",  # confidence, negative, too wide
        "zzz,14 1 0 0 1 1",  # unknown image
        f"{C},15 0.5 0 0 1 1",  # class id out of range
    ]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    extra = pd.DataFrame({"image_id": ["d" * 32], "width": [100], "height": [100]})
    _, problems = read_submission(path, images=pd.concat([IMAGES, extra]), expected=[A, B, C, "d" * 32])
    text = [str(p) for p in problems]
    assert any("line 2" in t and A in t and "not a multiple of 6" in t for t in text)
    assert any("line 3" in t and "duplicate row" in t and "line 2" in t for t in text)
    assert any("line 4" in t and "confidence 1.5 outside [0, 1]" in t for t in text)
    assert any("line 4" in t and "negative" in t for t in text)
    assert any("line 4" in t and "outside the 2000 x 2500 image" in t for t in text)
    assert any("line 5" in t and "zzz" in t and "unknown image id" in t for t in text)
    assert any("line 6" in t and "class id '15'" in t for t in text)
    assert any("d" * 32 in t and "missing image" in t for t in text)
    assert all(t.startswith(f"{path}: ") for t in text)
    with pytest.raises(SubmissionError) as info:
        raise_problems(path, problems)
    message = str(info.value)
    assert message.count("\n") == len(problems)  # one line each, then the count
    assert f"{len(problems)} problem(s)" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("", "empty PredictionString", id="empty"),
        pytest.param("0 0.5 a 0 1 1", "'a' is not a number", id="not-a-number"),
        pytest.param("0 nan 0 0 1 1", "NaN or infinite", id="nan"),
    ],
)
def test_malformed_strings(text: str, problem: str) -> None:
    values, found = parse_prediction_string(text)
    assert values is None and found is not None and problem in found


def test_class_id_written_as_a_float_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, f"image_id,PredictionString\n{A},3.0 0.5 0 0 10 10\n")
    _, problems = read_submission(path)
    assert len(problems) == 1 and "class id '3.0'" in problems[0].message


def test_wrong_header_is_one_clear_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "id,preds\nx,14 1 0 0 1 1\n")
    with pytest.raises(SubmissionError, match="header must be 'image_id,PredictionString'"):
        read_submission(path)


def test_problem_list_is_capped(tmp_path: Path) -> None:
    rows = "\n".join(f"img{i},14 2 0 0 1 1" for i in range(80))
    path = _write(tmp_path, "image_id,PredictionString\n" + rows + "\n")
    _, problems = read_submission(path)
    assert len(problems) == 80
    with pytest.raises(SubmissionError) as info:
        raise_problems(path, problems, limit=10)
    assert "... and 70 more problem(s)" in str(info.value)


def test_make_submission_round_trips_and_fills_images_without_predictions(tmp_path: Path) -> None:
    findings = pd.DataFrame(
        {
            "image_id": [A, A, A, B, B, A],
            "reader": "model",
            "label": ["Cardiomegaly", "Nodule/Mass", "COPD", "No finding", "Aortic enlargement", "ILD"],
            "x_min": [10.4, 5.0, np.nan, np.nan, -3.0, np.nan],
            "y_min": [20.6, 5.0, np.nan, np.nan, 10.0, np.nan],
            "x_max": [300.2, 5.2, np.nan, np.nan, 2500.0, np.nan],
            "y_max": [400.0, 60.0, np.nan, np.nan, 50.0, np.nan],
            "score": [0.25, 0.123456789, 0.9, 0.8, 0.5, 0.7],
        }
    )
    submission, counts = make_submission(findings, image_ids=list(IMAGES["image_id"]), images=IMAGES)
    assert counts == {"dropped_label": 1, "dropped_no_box": 1, "images": 3, "predictions": 4,
                      "normal_filled": 1, "outside_image_ids": 0}  # fmt: skip
    strings = dict(zip(submission["image_id"], submission["PredictionString"], strict=True))
    # Descending confidence; boxes in whole pixels; a too-thin box keeps one pixel of width.
    assert strings[A] == "3 0.25 10 21 300 400 8 0.123457 5 5 6 60"
    assert strings[B] == "14 0.8 0 0 1 1 0 0.5 0 10 2000 50"  # clipped to the 2000-pixel width
    assert strings[C] == NORMAL_STRING
    path = write_submission(submission, tmp_path / "out" / "submission.csv")
    preds, problems = read_submission(path, images=IMAGES, expected=IMAGES["image_id"])
    assert problems == []
    assert len(preds) == 5
    assert not list((tmp_path / "out").glob(".*tmp"))


@pytest.mark.parametrize("boxes", [20_000, 25_000])
def test_a_row_beyond_the_csv_field_limit_is_read(tmp_path: Path, boxes: int) -> None:
    """The csv module refuses fields over 128 KiB by default; a detector may write 20,000 boxes."""
    import csv

    rng = np.random.default_rng(boxes)
    x0, y0 = rng.integers(0, 1000, boxes), rng.integers(0, 1000, boxes)
    cls, conf = rng.integers(0, 14, boxes), rng.random(boxes).round(4)
    text = " ".join(
        f"{c} {s:g} {a} {b} {a + 5} {b + 7}" for c, s, a, b in zip(cls, conf, x0, y0, strict=True)
    )
    assert len(text) > csv.field_size_limit()
    path = tmp_path / "sub.csv"
    path.write_text(f"image_id,PredictionString\nimg1,{text}\nimg2,14 1 0 0 1 1\n")
    limit = csv.field_size_limit()
    preds, problems = read_submission(path)
    assert problems == [] and len(preds) == boxes + 1
    assert (preds["class_id"].to_numpy()[:boxes] == cls).all()
    assert csv.field_size_limit() == limit  # the process-wide limit is restored
