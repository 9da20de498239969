"""AUROC / AUPRC against scikit-learn (ties, weights, micro), undefined labels, bootstrap by patient."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrlab.errors import CxrlabError
from cxrlab.metrics.classification import (
    _auroc_auprc,
    _prepare,
    auprc,
    auroc,
    bootstrap_counts,
    classification_metrics,
    resampling_units,
    sensitivity_specificity,
)


def _data(seed: int, n: int = 600, labels: int = 5, decimals: int | None = None) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < rng.uniform(0.02, 0.4, labels)).astype(int)
    s = rng.random((n, labels)) * 0.7 + y * rng.uniform(0, 0.5, labels)
    if decimals is not None:
        s = np.round(s, decimals)  # many ties, also between positives and negatives
    return y, s


@pytest.mark.parametrize(
    "decimals", [pytest.param(None, id="continuous"), pytest.param(1, id="heavy-ties"),
                 pytest.param(0, id="two-values")],
)  # fmt: skip
def test_auroc_and_auprc_equal_scikit_learn(decimals: int | None) -> None:
    for seed in range(5):
        y, s = _data(seed, decimals=decimals)
        got_roc, got_pr = auroc(y, s), auprc(y, s)
        for j in range(y.shape[1]):
            assert got_roc[j] == pytest.approx(roc_auc_score(y[:, j], s[:, j]), abs=1e-12)
            assert got_pr[j] == pytest.approx(average_precision_score(y[:, j], s[:, j]), abs=1e-12)


def test_weighted_resamples_equal_scikit_learn_with_sample_weight() -> None:
    y, s = _data(1, n=300, labels=1, decimals=2)
    unit, n_units = resampling_units(300, None)
    counts = bootstrap_counts(n_units, 20, np.random.default_rng(0))
    roc, pr = _auroc_auprc(_prepare(y[:, 0], s[:, 0], unit, n_units), counts)
    for b in range(20):
        w = counts[:, b]
        assert roc[b] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0], sample_weight=w), abs=1e-12)
        assert pr[b] == pytest.approx(average_precision_score(y[:, 0], s[:, 0], sample_weight=w), abs=1e-12)


def test_label_without_positives_is_undefined_not_half() -> None:
    y, s = _data(2)
    y[:, 1] = 0
    y[:, 2] = 1  # no negatives: AUROC undefined too, AUPRC defined
    roc, pr = auroc(y, s), auprc(y, s)
    assert np.isnan(roc[1]) and np.isnan(pr[1])
    assert np.isnan(roc[2]) and pr[2] == pytest.approx(1.0)
    result = classification_metrics(y, s, n_boot=50)
    table = result.table
    assert np.isnan(table.loc[1, "auroc"]) and np.isnan(table.loc[1, "auroc_low"])
    macro = result.summary.set_index("label").loc["macro", "auroc"]
    assert macro == pytest.approx(np.mean(roc[[0, 3, 4]]))


def test_micro_average_equals_scikit_learn() -> None:
    y, s = _data(3, decimals=2)
    result = classification_metrics(y, s, n_boot=0)
    micro = result.summary.set_index("label").loc["micro"]
    assert micro["auroc"] == pytest.approx(roc_auc_score(y, s, average="micro"), abs=1e-12)
    assert micro["auprc"] == pytest.approx(average_precision_score(y, s, average="micro"), abs=1e-12)


def test_sensitivity_specificity_at_threshold() -> None:
    y = np.array([[1], [1], [0], [0], [0]])
    s = np.array([[0.9], [0.4], [0.5], [0.1], [0.2]])
    sens, spec = sensitivity_specificity(y, s, threshold=0.5)  # score >= 0.5 is positive
    assert sens[0] == 0.5 and spec[0] == pytest.approx(2 / 3)


def test_patient_bootstrap_draws_all_images_of_a_patient_together() -> None:
    patients = np.array(["p1", "p1", "p1", "p2", "p3", "p3", None])
    unit, n_units = resampling_units(7, patients)
    assert n_units == 4  # p1, p2, p3 and the image without a patient id
    counts = bootstrap_counts(n_units, 200, np.random.default_rng(0))[unit]  # (images, B)
    assert (counts[0] == counts[1]).all() and (counts[1] == counts[2]).all()
    assert (counts[4] == counts[5]).all()
    assert not (counts[0] == counts[3]).all()
    per_resample_units = bootstrap_counts(n_units, 200, np.random.default_rng(0)).sum(axis=0)
    assert (per_resample_units == n_units).all()


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    y, s = _data(4, n=2000)
    pid = np.repeat(np.arange(500), 4)
    a = classification_metrics(y, s, patient_ids=pid, n_boot=300, seed=9)
    b = classification_metrics(y, s, patient_ids=pid, n_boot=300, seed=9)
    c = classification_metrics(y, s, patient_ids=pid, n_boot=300, seed=10)
    assert a.table.equals(b.table)
    assert not a.table["auroc_low"].equals(c.table["auroc_low"])
    t = a.table
    assert ((t["auroc_low"] <= t["auroc"]) & (t["auroc"] <= t["auroc_high"])).all()
    assert ((t["auprc_low"] <= t["auprc"]) & (t["auprc"] <= t["auprc_high"])).all()
    assert a.resampled_by == "patient"


def test_patient_clusters_widen_the_interval() -> None:
    # Each patient's 10 images are copies: resampling images pretends 10x the information.
    rng = np.random.default_rng(0)
    y0 = (rng.random(200) < 0.3).astype(int)
    s0 = rng.random(200) + 0.3 * y0
    y, s = np.repeat(y0, 10)[:, None], np.repeat(s0, 10)[:, None]
    pid = np.repeat(np.arange(200), 10)
    by_image = classification_metrics(y, s, n_boot=400).table.iloc[0]
    by_patient = classification_metrics(y, s, patient_ids=pid, n_boot=400).table.iloc[0]
    width = lambda r: r["auroc_high"] - r["auroc_low"]  # noqa: E731
    assert width(by_patient) > 2 * width(by_image)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(CxrlabError, match="0 or 1"):
        auroc(np.array([0, 1, -1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(CxrlabError, match="finite"):
        auroc(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(CxrlabError, match="patient ids"):
        classification_metrics(np.zeros((3, 1)), np.zeros((3, 1)), patient_ids=["a"])
