"""cxrlab.viz.statistics: image counts per label and group, the reader rule, co-occurrence."""

from __future__ import annotations

import io
import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from conftest import REPO
from cxrlab.datasets.nih import index_nih, write_index
from cxrlab.datasets.vindr import index_vindr
from cxrlab.errors import ParameterError
from cxrlab.tables import select_readers
from cxrlab.viz.statistics import age_band, label_statistics, positive_pairs, render

FIXTURE = REPO / "tests" / "fixtures" / "nih"


def _finding(image_id: str, reader: str, label: str, score: float = 1.0, box: bool = False) -> dict:
    coords = [10.0, 10.0, 50.0, 50.0] if box else [np.nan] * 4
    return dict(zip(["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"],
                    [image_id, reader, label, *coords, score], strict=True))  # fmt: skip


def _multi_reader() -> tuple[pd.DataFrame, pd.DataFrame]:
    images = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d"],
            "split": ["train", "train", "train", "test"],
            "sex": ["F", "M", None, "F"],
            "age": [19.5, 20.0, np.nan, 85.0],
        }
    )
    rows = [
        # a: 2 of 3 readers see Nodule/Mass (one with two boxes): positive; 1 of 3 Cardiomegaly: not.
        _finding("a", "R1", "Nodule/Mass", box=True), _finding("a", "R1", "Nodule/Mass", box=True),
        _finding("a", "R2", "Nodule/Mass", box=True), _finding("a", "R3", "No finding"),
        _finding("a", "R2", "Cardiomegaly"),
        # b: the consensus overrides the readers' majority.
        *(_finding("b", r, "Cardiomegaly") for r in ("R1", "R2", "R3")),
        _finding("b", "consensus", "No finding"),
        # c: 3 readers, all Cardiomegaly and 2 Nodule/Mass; a model with a probability is not a reader.
        *(_finding("c", r, "Cardiomegaly") for r in ("R4", "R5", "R6")),
        _finding("c", "R4", "Nodule/Mass"), _finding("c", "R5", "Nodule/Mass"),
        _finding("c", "model", "Pneumothorax", score=0.9),
        # d: two readers disagree: 1 of 2 is not a strict majority.
        _finding("d", "R1", "Cardiomegaly"), _finding("d", "R2", "No finding"),
    ]  # fmt: skip
    return images, pd.DataFrame(rows)


def _reference_pairs(findings: pd.DataFrame) -> set[tuple[str, str]]:
    """The rule written as a plain loop: consensus if present, else > half of the human readers."""
    out = set()
    for image_id, rows in findings.groupby("image_id"):
        if (rows["reader"] == "consensus").any():
            out |= {(image_id, lab) for lab in rows.loc[rows["reader"] == "consensus", "label"]}
            continue
        humans = rows[rows["score"] >= 1]
        n = humans["reader"].nunique()
        for label, by in humans.groupby("label"):
            if 2 * by["reader"].nunique() > n:
                out.add((image_id, label))
    return out


def test_majority_and_consensus_rule_against_a_plain_loop() -> None:
    _, findings = _multi_reader()
    pairs, rule = positive_pairs(findings)
    assert set(zip(pairs["image_id"], pairs["label"], strict=True)) == _reference_pairs(findings)
    assert {("a", "Nodule/Mass"), ("b", "No finding"), ("c", "Cardiomegaly"), ("c", "Nodule/Mass")} == set(
        zip(pairs["image_id"], pairs["label"], strict=True)
    )
    assert "consensus" in rule and "strict majority" in rule and "model" in rule


def test_every_image_with_a_consensus_counts_the_consensus_only() -> None:
    """After `labels consensus` every image has a consensus reader: the vote frame is empty."""
    _, findings = _multi_reader()
    with_consensus = pd.concat(
        [findings, pd.DataFrame([_finding(i, "consensus", "Cardiomegaly") for i in ("a", "c", "d")])]
    )
    pairs, rule = positive_pairs(with_consensus)
    assert set(zip(pairs["image_id"], pairs["label"], strict=True)) == _reference_pairs(with_consensus)
    assert "strict majority" not in rule


def test_reader_option_counts_one_reader() -> None:
    _, findings = _multi_reader()
    pairs, rule = positive_pairs(findings, reader="R1")
    with pytest.raises(ParameterError, match=r"^reader R9: no rows in the findings; readers: R1, R2"):
        positive_pairs(findings, reader="R9")
    assert set(zip(pairs["image_id"], pairs["label"], strict=True)) == {
        ("a", "Nodule/Mass"), ("b", "Cardiomegaly"), ("d", "Cardiomegaly")
    }  # fmt: skip
    assert rule == "reader 'R1' only"


def test_groups_and_cooccurrence() -> None:
    images, findings = _multi_reader()
    stats = label_statistics(images, findings)
    assert stats.images == 4
    assert stats.overall.to_dict() == {"Cardiomegaly": 1, "Nodule/Mass": 2, "No finding": 1}
    assert stats.groups["split"].loc["Nodule/Mass"].to_dict() == {"train": 2, "test": 0}
    assert stats.group_sizes["sex"].to_dict() == {"F": 2, "M": 1, "unknown": 1}
    assert stats.group_sizes["age"].to_dict() == {"0-19": 1, "20-39": 1, "80+": 1, "unknown": 1}
    assert stats.cooccurrence.loc["Cardiomegaly", "Nodule/Mass"] == 1  # image c
    assert stats.cooccurrence.loc["No finding", "Nodule/Mass"] == 0
    out = json.loads(json.dumps(stats.to_json()))
    assert out["by"]["age"]["positives"]["0-19"]["Nodule/Mass"] == 1


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-19"),
        (19.9, "0-19"),
        (20, "20-39"),
        (59, "40-59"),
        (79.9, "60-79"),
        (80, "80+"),
        (np.nan, "unknown"),
    ],
)
def test_age_bands(age: float, band: str) -> None:
    assert age_band(pd.Series([age])).iloc[0] == band


def test_real_excerpt_counts_and_cooccurrence_against_the_csv() -> None:
    index = index_nih(FIXTURE)
    stats = label_statistics(index.images, index.findings)
    lines = (FIXTURE / "Data_Entry_2017_v2020.csv").read_text().splitlines()[1:]
    sets = [set(line.split(",")[1].replace("No Finding", "No finding").split("|")) for line in lines]
    for label in stats.labels:
        assert stats.overall[label] == sum(label in s for s in sets)
    for a, b in itertools.combinations(stats.labels, 2):
        assert stats.cooccurrence.loc[a, b] == sum(a in s and b in s for s in sets)
    test_names = set((FIXTURE / "test_list.txt").read_text().split())
    in_test = [s for line, s in zip(lines, sets, strict=True) if line.split(",")[0] in test_names]
    assert stats.groups["split"].loc["Effusion", "test"] == sum("Effusion" in s for s in in_test)
    text = io.StringIO()
    render(stats, Console(file=text, width=200))
    assert "Positive images per label, by age band" in text.getvalue() and "Co-occurrence" in text.getvalue()


def test_cli_stats_json(tmp_path: Path) -> None:
    tables = write_index(index_nih(FIXTURE), tmp_path / "t")
    out = subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "stats", str(tables), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["images"] == 380 and "single reader" in data["rule"]
    assert set(data["by"]["split"]["images"]) == {"train_val", "test"}
    bad = subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "stats", str(tables), "--reader", "R9"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "--reader R9: no rows in the findings" in bad.stderr


def test_the_rule_on_the_vindr_phantom_is_the_loops(vindr_phantom: Path) -> None:
    """Three readers per training image, a consensus per test image, a model's probabilities mixed in:
    the readers ``select_readers`` picks image by image, and the pairs counted, are the plain loop's."""
    findings = index_vindr(vindr_phantom).findings
    rng = np.random.default_rng(0)
    model = findings[findings["reader"] != "consensus"].sample(20, random_state=0)
    findings = pd.concat([findings, model.assign(reader="model-a", score=rng.uniform(0, 0.99, len(model)))])
    assert findings.groupby("image_id")["reader"].nunique().max() >= 3
    assert (findings["reader"] == "consensus").any() and (findings["reader"] != "consensus").any()
    chosen, _ = select_readers(findings, default="consensus-per-image")
    expected = []
    for _, rows in findings.groupby("image_id"):
        has = (rows["reader"] == "consensus").any()
        expected += list(rows.index[rows["reader"] == "consensus"] if has else rows.index[rows["score"] >= 1])
    assert sorted(chosen.index) == sorted(expected)
    pairs, rule = positive_pairs(findings)
    assert set(zip(pairs["image_id"], pairs["label"], strict=True)) == _reference_pairs(findings)
    assert rule.startswith("the 'consensus' reader on the ") and rule.endswith(
        "model readers left out: model-a"
    )
