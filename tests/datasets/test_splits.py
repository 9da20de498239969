"""cxrlab.datasets.splits: leak check and seeded, patient-level, stratified splits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from cxrlab.datasets.nih import index_nih, write_index
from cxrlab.datasets.splits import check_splits, make_splits, parse_fractions, stratified_patient_split
from cxrlab.errors import CxrlabError, UsageError
from cxrlab.tables import load_tables

FIXTURE = REPO / "tests" / "fixtures" / "nih"


def _tables(n_patients: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients with 1-6 images; a rare label (3% of patients) and a common one (40%)."""
    rng = np.random.default_rng(seed)
    rows, finds = [], []
    for p in range(n_patients):
        rare, common = rng.random() < 0.03, rng.random() < 0.4
        for k in range(int(rng.integers(1, 7))):
            image_id = f"{p:05d}_{k:03d}"
            rows.append({"image_id": image_id, "patient_id": f"{p:05d}", "split": None})
            if rare:
                finds.append({"image_id": image_id, "label": "Hernia"})
            if common:
                finds.append({"image_id": image_id, "label": "Effusion"})
            if not (rare or common):
                finds.append({"image_id": image_id, "label": "No finding"})
    return pd.DataFrame(rows), pd.DataFrame(finds)


def test_check_finds_a_patient_on_both_sides() -> None:
    images = pd.DataFrame(
        {
            "image_id": ["a", "b", "c", "d", "e"],
            "patient_id": ["1", "1", "2", "3", None],
            "split": ["train", "test", "train", "test", "test"],
        }
    )
    result = check_splits(images)
    assert not result.ok
    assert result.leaked_patients == 1 and result.leaked_images == 2
    assert result.examples == ["patient 1: 1 in train, 1 in test"] or result.examples == [
        "patient 1: 1 in test, 1 in train"
    ]
    assert result.no_patient_images == 1
    assert result.counts.loc["train", "images"] == 2 and result.counts.loc["test", "patients"] == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_make_keeps_patients_whole_follows_fractions_and_stratifies(seed: int) -> None:
    images, findings = _tables(seed=seed)
    out = make_splits(images, findings, {"train": 0.7, "val": 0.1, "test": 0.2}, seed=seed)
    assert check_splits(out).ok
    assert out["split"].notna().all()
    share = out["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.7, abs=0.05)
    assert share["test"] == pytest.approx(0.2, abs=0.05)
    # Every split gets some of the rare label's images: a random patient split would often miss it in val.
    rare = set(findings.loc[findings["label"] == "Hernia", "image_id"])
    assert set(out.loc[out["image_id"].isin(rare), "split"]) == {"train", "val", "test"}
    common = out[out["image_id"].isin(set(findings.loc[findings["label"] == "Effusion", "image_id"]))]
    assert (common["split"] == "train").mean() == pytest.approx(0.7, abs=0.05)


def test_make_is_seeded_and_leaves_input_alone() -> None:
    images, findings = _tables()
    before = images.copy()
    a = make_splits(images, findings, {"train": 0.8, "test": 0.2}, seed=7)
    b = make_splits(images, findings, {"train": 0.8, "test": 0.2}, seed=7)
    c = make_splits(images, findings, {"train": 0.8, "test": 0.2}, seed=8)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()
    pd.testing.assert_frame_equal(images, before)


def test_stratification_against_a_brute_force_optimum() -> None:
    """4 patients, 2 splits of half: the greedy result is as balanced as the best of all 16 assignments."""
    table = pd.DataFrame(
        {"__images__": [2, 2, 2, 2], "A": [2, 2, 0, 0], "B": [0, 2, 2, 0]}, index=["p1", "p2", "p3", "p4"]
    )
    got = stratified_patient_split(table, {"x": 0.5, "y": 0.5}, seed=0)
    imbalance = sum(abs(table.loc[[p for p, s in got.items() if s == "x"], c].sum() - table[c].sum() / 2)
                    for c in table.columns)  # fmt: skip
    assert imbalance == 0  # p1+p3 / p2+p4 (or swapped) splits A, B and images exactly in half


def test_within_keeps_the_other_split_and_refuses_leaks() -> None:
    index = index_nih(FIXTURE)
    out = make_splits(index.images, index.findings, {"train": 0.8, "val": 0.2}, seed=0, within="train_val")
    test_before = index.images["split"] == "test"
    assert (out.loc[test_before, "split"] == "test").all()
    assert set(out.loc[~test_before, "split"]) == {"train", "val"}
    assert (out["previous_split"] == index.images["split"]).all()
    assert check_splits(out).ok
    leaky = index.images.copy()
    leaky.loc[leaky.index[0], "split"] = "test"
    pid = leaky.loc[leaky.index[0], "patient_id"]
    if (leaky.loc[leaky["patient_id"] == pid, "split"] == "train_val").any():
        with pytest.raises(CxrlabError, match="also have images in other splits"):
            make_splits(leaky, index.findings, {"train": 0.8, "val": 0.2}, within="train_val")


def test_parse_fractions() -> None:
    assert parse_fractions("0.7,0.1,0.2", "train,val,test") == {"train": 0.7, "val": 0.1, "test": 0.2}
    with pytest.raises(UsageError, match=r"^names must give one split per fraction"):
        parse_fractions("0.7,0.3", "train,val,test")
    with pytest.raises(UsageError, match=r"^fractions must be numbers separated by commas"):
        parse_fractions("a,b", "x,y")
    with pytest.raises(UsageError, match=r"^fractions must be shares of the whole that sum to 1"):
        parse_fractions("0.5,0.1", "x,y")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True, check=False
    )


def test_cli_check_and_make(tmp_path: Path) -> None:
    tables = write_index(index_nih(FIXTURE), tmp_path / "tables")
    out = _cli("splits", "check", str(tables))
    assert out.returncode == 0, out.stderr
    assert "No patient is in more than one split" in out.stdout
    made = _cli("splits", "make", str(tables), "--out", str(tmp_path / "new"), "--seed", "3", "--json")
    assert made.returncode == 0, made.stderr
    new = load_tables(tmp_path / "new")
    assert set(new.images["split"]) == {"train", "val", "test"}
    assert len(new.findings) == len(load_tables(tables).findings)
    assert set(load_tables(tables).images["split"]) == {"train_val", "test"}  # the input is untouched
    # A leak makes check exit 1.
    images = pd.read_parquet(tmp_path / "new" / "images.parquet")
    pid = images["patient_id"].value_counts().index[0]
    rows = images.index[images["patient_id"] == pid]
    images.loc[rows[0], "split"] = "train"
    images.loc[rows[1], "split"] = "test"
    images.to_parquet(tmp_path / "new" / "images.parquet")
    leak = _cli("splits", "check", str(tmp_path / "new"), "--json")
    assert leak.returncode == 1
    assert '"leaked_patients": 1' in leak.stdout
