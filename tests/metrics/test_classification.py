"""AUROC / AUPRC against scikit-learn (ties, weights, micro), undefined labels, bootstrap by patient."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from cxrlab.errors import CxrlabError
from cxrlab.metrics.classification import (
    UndefinedMetricWarning,
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
    with pytest.warns(UndefinedMetricWarning, match="column 1, column 2"):
        roc, pr = auroc(y, s), auprc(y, s)
    assert np.isnan(roc[1]) and np.isnan(pr[1])
    assert np.isnan(roc[2]) and pr[2] == pytest.approx(1.0)
    names = ["a", "b", "c", "d", "e"]
    with pytest.warns(UndefinedMetricWarning, match=r"AUROC undefined \(NaN\) for b, c:"):
        result = classification_metrics(y, s, labels=names, n_boot=50)
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


def _auroc_auprc_in_one_block(col: object, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first implementation: every run's weights at once, dense (m x B). Memory grew with the number
    of distinct scores (1.3 GiB for the pooled column at 102k images); kept as the reference."""
    wp = np.asarray(col.pos @ w)  # type: ignore[attr-defined]
    wn = np.asarray(col.neg @ w)  # type: ignore[attr-defined]
    p_tot, n_tot = wp.sum(axis=0), wn.sum(axis=0)
    cum = np.cumsum(wn, axis=0)
    below, equal = cum[0:-1:2], wn[1::2]
    with np.errstate(invalid="ignore", divide="ignore"):
        roc = (wp * (below + 0.5 * equal)).sum(axis=0) / (p_tot * n_tot)
        tp = np.cumsum(wp[::-1], axis=0)[::-1]
        precision = tp / np.maximum(tp + n_tot - below, 1e-300)
        pr = (wp * precision).sum(axis=0) / p_tot
    roc[(p_tot == 0) | (n_tot == 0)] = np.nan
    pr[p_tot == 0] = np.nan
    return roc, pr


@pytest.mark.parametrize("block_cells", [1, 7, 64, 1000, 1 << 20])
@pytest.mark.parametrize("decimals", [None, 1])
def test_blocks_give_exactly_the_one_block_result(
    monkeypatch: pytest.MonkeyPatch, block_cells: int, decimals: int | None
) -> None:
    """Blocking bounds memory; the AUROC and AUPRC of every resample must not move by a single bit."""
    import cxrlab.metrics.classification as classification

    monkeypatch.setattr(classification, "_BLOCK_CELLS", block_cells)
    y, s = _data(block_cells, n=400, labels=3, decimals=decimals)
    patients = np.random.default_rng(block_cells).integers(0, 150, len(y))
    unit, n_units = resampling_units(len(y), patients)
    columns = [_prepare(y[:, j], s[:, j], unit, n_units) for j in range(3)]
    columns.append(_prepare(y.ravel(), s.ravel(), np.repeat(unit, 3), n_units))  # the pooled (micro) one
    for n_boot in (1, 37):
        w = (
            np.ones((n_units, 1))
            if n_boot == 1
            else bootstrap_counts(n_units, n_boot, np.random.default_rng(0))
        )
        for col in columns:
            got, want = _auroc_auprc(col, w), _auroc_auprc_in_one_block(col, w)
            assert np.array_equal(got[0], want[0], equal_nan=True)
            assert np.array_equal(got[1], want[1], equal_nan=True)


def test_the_pooled_column_has_bounded_memory() -> None:
    """30k images x 14 labels pooled, 100 resamples: the one-block version peaked at ~250 MiB."""
    import tracemalloc

    y, s = _data(3, n=30_000, labels=14)
    unit, n_units = resampling_units(len(y), np.random.default_rng(3).integers(0, 7_500, len(y)))
    pooled = _prepare(y.ravel(), s.ravel(), np.repeat(unit, 14), n_units)
    w = bootstrap_counts(n_units, 100, np.random.default_rng(0))
    tracemalloc.start()
    try:
        _auroc_auprc(pooled, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pooled.pos.shape[0] > 10_000  # many distinct positive scores: the case that grew
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"
