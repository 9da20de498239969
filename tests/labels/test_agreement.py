"""Agreement: Fleiss' kappa against a textbook example and a slow reference, box F1 by hand."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlab.boxes import box_iou
from cxrlab.cli.main import app
from cxrlab.labels.agreement import agreement, cohen_kappa, fleiss_kappa, match_boxes
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, save_tables

# Fleiss (1971) as worked in textbooks: 10 subjects, 14 raters, 5 categories; kappa = 0.210.
FLEISS_EXAMPLE = np.array(
    [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
)


def test_fleiss_textbook_example() -> None:
    assert fleiss_kappa(FLEISS_EXAMPLE) == pytest.approx(0.210, abs=5e-4)


def reference_fleiss(ratings: list[list[int]], k: int) -> float:
    """Straight from the definition: agreeing ordered rater pairs per subject; chance from the marginals."""
    totals = [0] * k
    per_subject = []
    for subject in ratings:
        n = len(subject)
        same = sum(1 for a, b in permutations(range(n), 2) if subject[a] == subject[b])
        per_subject.append(same / (n * (n - 1)))
        for r in subject:
            totals[r] += 1
    p_bar = sum(per_subject) / len(per_subject)
    total = sum(totals)
    p_e = sum((t / total) ** 2 for t in totals)
    return (p_bar - p_e) / (1 - p_e)


@pytest.mark.parametrize("seed", range(5))
def test_fleiss_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ratings = rng.integers(0, 3, size=(40, 4)).tolist()
    counts = np.zeros((40, 3))
    for i, subject in enumerate(ratings):
        for r in subject:
            counts[i, r] += 1
    assert fleiss_kappa(counts) == pytest.approx(reference_fleiss(ratings, 3))


def test_fleiss_edges() -> None:
    assert fleiss_kappa(np.array([[3, 0], [0, 3], [3, 0]])) == pytest.approx(1.0)
    assert np.isnan(fleiss_kappa(np.array([[3, 0], [3, 0]])))  # every rating the same: undefined
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa(np.array([[3, 0], [1, 1]]))


def test_cohen_matches_sklearn() -> None:
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.3
    b = np.where(rng.random(200) < 0.8, a, ~a)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_hungarian_beats_greedy() -> None:
    """Greedy would pair a0 with b0 (IoU 0.81) and leave a1 unmatched; the best assignment pairs both."""
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 14]], float)
    b = np.array([[0, 0, 10, 12], [0, 0, 10, 8]], float)
    ious = match_boxes(a, b, 0.4)
    assert len(ious) == 2


def test_matching_counts_the_most_pairs_above_the_threshold() -> None:
    """Maximising the total IoU over all pairs would pair a0-b0 (0.34) and a1-b1 (0.31), both under 0.4,
    and find no agreement; a0-b1 (0.52) is a match at IoU 0.4."""
    a = np.array([[4, 1, 11, 8], [2, 0, 6, 7]], float)
    b = np.array([[6, 0, 9, 11], [2, 2, 10, 9]], float)
    ious = match_boxes(a, b, 0.4)
    assert len(ious) == 1 and ious[0] == pytest.approx(36 / 69)


def _random_boxes(rng: np.random.Generator, k: int) -> np.ndarray:
    x = np.sort(rng.integers(0, 12, (k, 2)), axis=1)
    y = np.sort(rng.integers(0, 12, (k, 2)), axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1] + 1, y[:, 1] + 1], axis=1).astype(float)


def test_matching_is_a_maximum_matching_by_brute_force() -> None:
    rng = np.random.default_rng(3)
    for _ in range(3000):
        n, m = (int(k) for k in rng.integers(1, 4, size=2))
        a, b = _random_boxes(rng, n), _random_boxes(rng, m)
        iou = box_iou(a, b)
        if n <= m:
            best = max(sum(iou[i, j] >= 0.4 for i, j in enumerate(p)) for p in permutations(range(m), n))
        else:
            best = max(sum(iou[i, j] >= 0.4 for j, i in enumerate(p)) for p in permutations(range(n), m))
        assert len(match_boxes(a, b, 0.4)) == best


def findings(rows: list[tuple]) -> pd.DataFrame:
    full = [(*r, *([np.nan] * 4 if len(r) == 3 else []), 1.0) for r in rows]
    return conform_findings(
        pd.DataFrame(full, columns=["image_id", "reader", "label", *BOX_COLUMNS, "score"])
    )


ROWS = [
    ("i1", "R1", "Nodule/Mass", 0, 0, 10, 10),
    ("i1", "R2", "Nodule/Mass", 0, 0, 10, 10),
    ("i1", "R3", "Nodule/Mass", 50, 50, 60, 60),
    ("i2", "R1", "No finding"),
    ("i2", "R2", "No finding"),
    ("i2", "R3", "Cardiomegaly", 0, 0, 100, 50),
    ("i3", "R1", "COPD"),
    ("i3", "R2", "COPD"),
    ("i3", "R3", "COPD"),
    ("i3", "consensus", "COPD"),  # never counted as a reader
]


def test_box_agreement_by_hand() -> None:
    a = agreement(findings(ROWS))
    nod = next(r for r in a.labels if r["label"] == "Nodule/Mass")
    # pairs on i1: R1-R2 match (IoU 1), R1-R3 none, R2-R3 none: 1 match over 6 boxes -> F1 2/6.
    assert nod["box_f1"] == pytest.approx(2 / 6) and nod["mean_iou"] == pytest.approx(1.0)
    cardio = next(r for r in a.labels if r["label"] == "Cardiomegaly")
    assert cardio["box_f1"] == 0.0 and cardio["mean_iou"] is None
    # COPD: all three on i3, none on i1, i2: perfect agreement on presence.
    copd = next(r for r in a.labels if r["label"] == "COPD")
    assert copd["kappa"] == pytest.approx(1.0)
    assert a.info["readers_per_image"] == 3 and a.info["images_in_kappa"] == 3
    r3 = next(r for r in a.readers if r["reader"] == "R3")
    r1 = next(r for r in a.readers if r["reader"] == "R1")
    assert r1["box_f1"] > r3["box_f1"] == 0.0
    assert {r["reader"] for r in a.readers} == {"R1", "R2", "R3"}
    assert a.overall["box_matches"] == 1


def test_presence_kappa_matches_fleiss_on_the_counts() -> None:
    a = agreement(findings(ROWS))
    nf = next(r for r in a.labels if r["label"] == "No finding")
    # No finding: i1 0 of 3, i2 2 of 3, i3 0 of 3.
    assert nf["kappa"] == pytest.approx(fleiss_kappa(np.array([[3, 0], [1, 2], [3, 0]])))


def test_cli_agreement_json(tmp_path: Path) -> None:
    f = findings(ROWS)
    ids = ["i1", "i2", "i3"]
    images = conform_images(
        pd.DataFrame(
            {
                "image_id": ids,
                "dataset": "vindr",
                "split": "train",
                "patient_id": None,
                "path": ids,
                "width": 100,
                "height": 100,
                "sex": None,
                "age": None,
                "view": "PA",
            }
        )
    )
    save_tables(tmp_path / "t", images, f)
    res = CliRunner().invoke(app, ["labels", "agreement", str(tmp_path / "t"), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert {"info", "overall", "labels", "readers"} <= set(payload)
    res = CliRunner().invoke(app, ["labels", "agreement", str(tmp_path / "t")])
    assert res.exit_code == 0 and "Fleiss kappa" in res.output and "Cohen kappa" in res.output
