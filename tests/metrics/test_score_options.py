"""`score`: options checked before any work; AUROC predictions complete, one score per (image, label)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cli_helpers import run_cli
from cxrlab.errors import ParameterError
from cxrlab.metrics.scoring import score
from cxrlab.tables import BOX_COLUMNS, save_tables

LABELS = ["Cardiomegaly", "Nodule/Mass", "Pleural effusion"]


def _case(tmp_path: Path, rng: np.random.Generator, n: int = 30) -> tuple[Path, pd.DataFrame, np.ndarray]:
    """Truth tables with every label present and absent, and one image-level score per (image, label)."""
    ids = [f"{k:032x}" for k in range(n)]
    images = pd.DataFrame({"image_id": ids, "dataset": "vindr", "split": "test", "patient_id": None,
                           "path": [f"{i}.dicom" for i in ids], "width": 1000, "height": 1000, "sex": None,
                           "age": np.nan, "view": "PA"})  # fmt: skip
    y = rng.random((n, len(LABELS))) < 0.4
    y[0], y[1] = True, False
    rows = [(ids[i], "consensus", LABELS[j], 10, 10, 50, 50) for i, j in zip(*np.nonzero(y), strict=True)]
    rows += [(ids[i], "consensus", "No finding", *[np.nan] * 4) for i in np.flatnonzero(~y.any(axis=1))]
    findings = pd.DataFrame(rows, columns=["image_id", "reader", "label", *BOX_COLUMNS]).assign(score=1.0)
    truth = save_tables(tmp_path / "truth", images, findings)
    scores = np.clip(y * 0.3 + rng.random(y.shape) * 0.7, 0, 1).round(3)
    preds = pd.DataFrame(
        [
            (ids[i], "model", LABELS[j], *[np.nan] * 4, scores[i, j])
            for i in range(n)
            for j in range(len(LABELS))
        ],
        columns=["image_id", "reader", "label", *BOX_COLUMNS, "score"],
    )
    return truth, preds, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_missing_and_duplicate_pairs_are_errors_unless_allowed(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth, preds, y = _case(tmp_path, rng)
    drop = rng.choice(len(preds), size=int(rng.integers(1, 6)), replace=False)
    holed = preds.drop(index=drop)
    holed.to_csv(tmp_path / "holed.csv", index=False)
    with pytest.raises(
        ParameterError, match=rf"^allow_missing is off and in .*holed.csv {len(drop)} \(image, label\)"
    ) as caught:
        score(truth, tmp_path / "holed.csv", metric="auroc", n_boot=0)
    assert caught.value.exit_code == 1
    result = score(truth, tmp_path / "holed.csv", metric="auroc", n_boot=0, allow_missing=True)
    assert any(
        f"{len(drop)} (image, label) pair(s) have no score: missing ones scored 0" in n for n in result.notes
    )
    # The allowed result is exactly scikit-learn's with the missing pairs at 0.
    full = preds.copy()
    full.loc[drop, "score"] = 0.0
    s = full["score"].to_numpy().reshape(y.shape)
    expected = [roc_auc_score(y[:, j], s[:, j]) for j in range(len(LABELS))]
    got = result.table.set_index("label").loc[LABELS, "auroc"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)

    twice = pd.concat([preds, preds.iloc[[3]].assign(score=0.99)], ignore_index=True)
    twice.to_csv(tmp_path / "twice.csv", index=False)
    with pytest.raises(ParameterError, match=r"1 have several"):
        score(truth, tmp_path / "twice.csv", metric="auroc", n_boot=0)


def test_cli_names_the_flag_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, preds, _ = _case(tmp_path, np.random.default_rng(4))
    preds.iloc[1:].to_csv(tmp_path / "p.csv", index=False)
    args = [
        "score",
        "--truth",
        str(truth),
        "--pred",
        str(tmp_path / "p.csv"),
        "--metric",
        "auroc",
        "--bootstrap",
        "0",
    ]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 1 and err.startswith("error: --allow-missing is off") and out == ""
    code, out, err = run_cli([*args, "--allow-missing"], monkeypatch, capsys)
    assert code == 0 and "1 (image, label) pair(s) have no score" in err


BAD_OPTIONS = [("--iou", "2"), ("--iou", "-1"), ("--iou", "nan"), ("--iou", "1"), ("--threshold", "1.5"),
               ("--bootstrap", "-3")]  # fmt: skip


@pytest.mark.parametrize(("flag", "value"), BAD_OPTIONS)
def test_bad_options_are_refused_before_any_work(
    tmp_path: Path, flag: str, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, preds, _ = _case(tmp_path, np.random.default_rng(5))
    preds.to_csv(tmp_path / "p.csv", index=False)
    args = ["score", "--truth", str(truth), "--pred", str(tmp_path / "p.csv"), f"{flag}={value}"]
    code, out, err = run_cli(args, monkeypatch, capsys)
    assert code == 2 and err.startswith(f"error: {flag} ") and out == ""


def test_the_library_names_the_parameter(tmp_path: Path) -> None:
    truth, preds, _ = _case(tmp_path, np.random.default_rng(6))
    preds.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(ParameterError, match=r"^iou_threshold must be between 0 and 1"):
        score(truth, tmp_path / "p.csv", iou_threshold=2.0)


def test_submission_make_never_writes_over_its_predictions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    truth, preds, _ = _case(tmp_path, np.random.default_rng(7))
    preds.to_csv(tmp_path / "p.csv", index=False)
    before = (tmp_path / "p.csv").read_bytes()
    code, _, err = run_cli(["submission", "make", str(tmp_path / "p.csv"), "--out", str(tmp_path / "p.csv"),
                            "--images", str(truth)], monkeypatch, capsys)  # fmt: skip
    assert code == 2 and err.startswith("error: --out") and (tmp_path / "p.csv").read_bytes() == before
