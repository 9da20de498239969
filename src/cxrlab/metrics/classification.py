"""Image-level classification metrics per label: AUROC, AUPRC, sensitivity and specificity, with macro and
micro means and percentile bootstrap confidence intervals resampled by patient.

AUROC is the Mann-Whitney statistic with average ranks for ties, which is what scikit-learn's
``roc_auc_score`` computes; AUPRC is scikit-learn's ``average_precision_score`` (the step-wise sum
``sum_n (R_n - R_{n-1}) P_n``, tied scores one threshold). A label without positives (or without negatives)
has an undefined AUROC: NaN, never 0.5, and it is left out of the macro mean.

Both are computed from the scores sorted once per label and grouped into runs of equal score: with
resampling weights ``w`` (how many times each image is drawn), each run's positive and negative weights give
``AUROC = sum_g Wpos_g (Wneg_below_g + Wneg_g / 2) / (Wpos Wneg)``. A bootstrap resample is then only a
gather of the weights and two cumulative sums, for all resamples at once, so 1,000 resamples of
25,596 x 14 take seconds. Resampling by patient draws patients with replacement and takes all their images,
as the images of one patient are not independent (ChestX-ray14 has up to 184 per patient).

A resample that draws no positive (or no negative) of a label leaves that label's AUROC undefined in it:
such resamples are left out, and the interval is the percentiles of the resamples where the value is
defined (so a label with very few positives gets an interval conditional on at least one being drawn).
The macro mean of a resample averages the labels defined in it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.params import check_count, check_probability

_CHUNK = 100  # resamples per block: bounds memory and keeps results independent of the block size


@dataclass
class _Column:
    """One score column reduced to what AUROC and AUPRC need: only positives' scores make thresholds.

    With ``v_1 < ... < v_m`` the distinct scores of the positives, positive run ``k`` holds the positives
    scoring ``v_k``; negative bucket ``2k`` holds the negatives strictly between ``v_{k-1}`` and ``v_k``
    (below ``v_1`` for k = 0, above ``v_m`` for k = m) and ``2k + 1`` those scoring exactly ``v_k``. The
    matrices count the items of each resampling unit (patient) in each run or bucket, so that a product with
    the units' resampling counts gives every resample's weights at once.
    """

    pos: sparse.csr_matrix  # (m, units)
    neg: sparse.csr_matrix  # (2m + 1, units)
    pos_per_unit: np.ndarray  # (units,) positives of each unit
    neg_per_unit: np.ndarray  # (units,) negatives of each unit


def _prepare(y: np.ndarray, s: np.ndarray, unit: np.ndarray, n_units: int) -> _Column:
    is_pos = y.astype(bool)
    pos_s, neg_s = s[is_pos], s[~is_pos]
    v = np.unique(pos_s)
    m = len(v)
    pos_run = np.searchsorted(v, pos_s)
    lo = np.searchsorted(v, neg_s, side="left")
    hi = np.searchsorted(v, neg_s, side="right")
    neg_bucket = np.where(hi > lo, 2 * lo + 1, 2 * lo)

    def counts(rows: np.ndarray, units: np.ndarray, n_rows: int) -> sparse.csr_matrix:
        data = np.ones(len(rows))
        return sparse.csr_matrix((data, (rows, units)), shape=(n_rows, n_units))

    per_unit = [np.bincount(unit[mask], minlength=n_units).astype(float) for mask in (is_pos, ~is_pos)]
    return _Column(counts(pos_run, unit[is_pos], m), counts(neg_bucket, unit[~is_pos], 2 * m + 1), *per_unit)


_BLOCK_CELLS = 1 << 18
"""Runs x resamples per block of :func:`_auroc_auprc` (2 MiB a matrix): memory stays bounded whatever the
number of distinct scores (the pooled micro column of 102k x 14 has 150k), and the blocks stay in cache."""


def _auroc_auprc(col: _Column, unit_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AUPRC for each column of ``unit_weights`` (units, B): (B,) each, NaN where undefined.

    The runs are taken in blocks, carrying the negatives below and the positives before each block, and
    laid out resample by resample so that the cumulative sums run along contiguous memory (along the runs
    they were the slowest step). The weights are integer counts, so every sum but AUPRC's is exact in any
    order; AUPRC's terms are added run after run, in the order of one sum over all runs, so the result does
    not depend on the blocks.
    """
    m, n_boot = col.pos.shape[0], unit_weights.shape[1]
    p_tot, n_tot = col.pos_per_unit @ unit_weights, col.neg_per_unit @ unit_weights
    neg_before, pos_before = np.zeros(n_boot), np.zeros(n_boot)
    roc_sum, pr_sum = np.zeros(n_boot), np.zeros(n_boot)
    # One block for a point estimate (B = 1): numpy sums a single row pairwise, which blocks would not.
    step = max(1, m if n_boot == 1 else _BLOCK_CELLS // n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        for a in range(0, m, step):
            b = min(a + step, m)
            wp = np.ascontiguousarray((col.pos[a:b] @ unit_weights).T)  # (B, runs)
            wn = np.ascontiguousarray((col.neg[2 * a : 2 * b] @ unit_weights).T)  # buckets 2a .. 2b - 1
            cum = np.cumsum(wn, axis=1) + neg_before[:, None]
            below, equal = cum[:, 0::2], wn[:, 1::2]  # negatives strictly below v_k; scoring v_k
            roc_sum += (wp * (below + 0.5 * equal)).sum(axis=1)
            # Calling score >= v_k positive: the true positives are the positives' weight at runs >= k.
            tp = p_tot[:, None] - (np.cumsum(wp, axis=1) - wp + pos_before[:, None])
            terms = wp * (tp / np.maximum(tp + n_tot[:, None] - below, 1e-300))
            if n_boot == 1:
                pr_sum = terms.sum(axis=1)
            else:  # run after run: a cumulative sum adds in sequence
                pr_sum = np.cumsum(np.hstack([pr_sum[:, None], terms]), axis=1)[:, -1]
            neg_before, pos_before = cum[:, -1], pos_before + wp.sum(axis=1)
        auroc = roc_sum / (p_tot * n_tot)
        auprc = pr_sum / p_tot
    auroc[(p_tot == 0) | (n_tot == 0)] = np.nan
    auprc[p_tot == 0] = np.nan
    return auroc, auprc


def _check(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim == 1:
        y_true, y_score = y_true[:, None], y_score[:, None]
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise CxrlabError(f"truth {y_true.shape} and scores {y_score.shape} must have the same (N, L) shape")
    if not np.isin(y_true, (0.0, 1.0)).all():
        raise CxrlabError("truth must be 0 or 1 everywhere (no NaN, no uncertain -1)")
    if not np.isfinite(y_score).all():
        raise CxrlabError("scores must be finite numbers (no NaN)")
    return y_true, y_score


def _point(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(y_true)
    unit, ones = np.arange(n), np.ones((n, 1))
    values = [
        _auroc_auprc(_prepare(y_true[:, j], y_score[:, j], unit, n), ones) for j in range(y_true.shape[1])
    ]
    return np.array([v[0][0] for v in values]), np.array([v[1][0] for v in values])


class UndefinedMetricWarning(UserWarning):
    """A metric without a value for some label (AUROC of a label without positives or negatives): NaN."""


def warn_undefined(values: np.ndarray, labels: Sequence[str], what: str = "AUROC") -> None:
    """Warn, naming the labels, where ``values`` is NaN: a library user would otherwise meet a silent NaN."""
    missing = [str(labels[int(j)]) for j in np.flatnonzero(np.isnan(values))]
    if missing:
        warnings.warn(
            f"{what} undefined (NaN) for {', '.join(missing)}: no positive or no negative image",
            UndefinedMetricWarning,
            stacklevel=3,
        )


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """AUROC per column of (N, L) truth (0/1) and scores -> (L,), NaN (with a warning) where a column lacks
    either class."""
    values = _point(*_check(y_true, y_score))[0]
    warn_undefined(values, [f"column {j}" for j in range(len(values))])
    return values


def auprc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """Average precision per column (scikit-learn's ``average_precision_score``) -> (L,).

    NaN for a column without positives.
    """
    return _point(*_check(y_true, y_score))[1]


def sensitivity_specificity(
    y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Per column, sensitivity and specificity of calling ``score >= threshold`` positive: (L,), (L,)."""
    y_true, y_score = _check(y_true, y_score)
    called = y_score >= threshold
    pos, neg = y_true.sum(axis=0), (1 - y_true).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (called & (y_true == 1)).sum(axis=0) / pos
        spec = (~called & (y_true == 0)).sum(axis=0) / neg
    return np.where(pos > 0, sens, np.nan), np.where(neg > 0, spec, np.nan)


def resampling_units(n_items: int, groups: Sequence[object] | np.ndarray | None) -> tuple[np.ndarray, int]:
    """The unit code of each item (its patient, or the item itself without groups) and the number of units.

    An item whose group is missing (NaN/None) is a unit of its own.
    """
    if groups is None:
        return np.arange(n_items), n_items
    series = pd.Series(np.asarray(groups, dtype=object))
    if len(series) != n_items:
        raise CxrlabError(f"{len(series)} patient ids for {n_items} images")
    codes, uniques = pd.factorize(series)  # missing -> -1
    missing = codes < 0
    codes = codes.astype(np.int64)
    codes[missing] = len(uniques) + np.arange(int(missing.sum()))
    return codes, len(uniques) + int(missing.sum())


def bootstrap_counts(n_units: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_units, n_boot) float: how many times each unit is drawn in each resample (n_units draws each)."""
    draws = rng.integers(0, n_units, size=(n_boot, n_units))
    flat = (draws * n_boot + np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_units * n_boot).reshape(n_units, n_boot).astype(float)


@dataclass
class ClassificationResult:
    """Per-label metrics and their means; ``*_low``/``*_high`` are the bootstrap percentile CI bounds."""

    table: pd.DataFrame
    """One row per label: label, n, positives, auroc(+_low/_high), auprc(+_low/_high), sensitivity,
    specificity."""
    summary: pd.DataFrame
    """Rows ``macro`` (mean over labels with a defined value) and ``micro`` (all labels pooled)."""
    n_boot: int
    ci: float
    resampled_by: str
    """``patient`` or ``image``."""


def _bootstrap(
    columns: list[_Column], micro_col: _Column, n_units: int, n_boot: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every resample's AUROC and AUPRC per label (B, L) each, and of the pooled column (B, 2).

    Resamples are drawn in blocks of :data:`_CHUNK`, so the results do not depend on memory."""
    n_labels = len(columns)
    boot_roc = np.full((n_boot, n_labels), np.nan)
    boot_pr = np.full((n_boot, n_labels), np.nan)
    boot_micro = np.full((n_boot, 2), np.nan)
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - start)
        w = bootstrap_counts(n_units, b, rng)
        rows = slice(start, start + b)
        for j, col in enumerate(columns):
            boot_roc[rows, j], boot_pr[rows, j] = _auroc_auprc(col, w)
        boot_micro[rows, 0], boot_micro[rows, 1] = _auroc_auprc(micro_col, w)
    return boot_roc, boot_pr, boot_micro


def _bounds(values: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bounds per column over the resamples where the value is defined (NaN without any)."""
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    if len(values) == 0:
        return low, high
    ok = np.isfinite(values).any(axis=0)
    if ok.any():
        lo, hi = np.nanpercentile(values[:, ok], [alpha, 100 - alpha], axis=0)
        low[ok], high[ok] = lo, hi
    return low, high


def _nanmean_rows(values: np.ndarray) -> np.ndarray:
    """Mean of each row over its defined values; NaN for a row without any."""
    ok = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok.any(axis=1), np.where(ok, values, 0).sum(axis=1) / ok.sum(axis=1), np.nan)


def classification_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    labels: Sequence[str] | None = None,
    patient_ids: Sequence[object] | np.ndarray | None = None,
    n_boot: int = 1000,
    ci: float = 0.95,
    threshold: float = 0.5,
    seed: int = 0,
) -> ClassificationResult:
    """AUROC and AUPRC with bootstrap CIs, sensitivity and specificity at ``threshold``, per label and mean.

    ``y_true`` and ``y_score`` are (N images, L labels). ``n_boot=0`` skips the intervals (NaN bounds).
    """
    check_count(n_boot, "n_boot")
    check_probability(threshold, "threshold")
    if not 0 < ci < 1:
        raise ParameterError("ci", f"must be between 0 and 1, exclusive (got {ci})")
    y_true, y_score = _check(y_true, y_score)
    n, n_labels = y_true.shape
    labels = list(labels) if labels is not None else [f"label_{j}" for j in range(n_labels)]
    if len(labels) != n_labels:
        raise CxrlabError(f"{len(labels)} label names for {n_labels} columns")
    unit, n_units = resampling_units(n, patient_ids)
    columns = [_prepare(y_true[:, j], y_score[:, j], unit, n_units) for j in range(n_labels)]
    micro_col = _prepare(y_true.ravel(), y_score.ravel(), np.repeat(unit, n_labels), n_units)
    # The point estimate: each unit once, i.e. each image once.
    once = np.ones((n_units, 1))
    point = [_auroc_auprc(c, once) for c in columns]
    est_roc = np.array([p[0][0] for p in point])
    warn_undefined(est_roc, labels)
    est_pr = np.array([p[1][0] for p in point])
    micro_roc, micro_pr = (v[0] for v in _auroc_auprc(micro_col, once))
    boot_roc, boot_pr, boot_micro = _bootstrap(columns, micro_col, n_units, n_boot, seed)
    alpha = (1 - ci) / 2 * 100
    sens, spec = sensitivity_specificity(y_true, y_score, threshold)
    roc_lo, roc_hi = _bounds(boot_roc, alpha)
    pr_lo, pr_hi = _bounds(boot_pr, alpha)
    table = pd.DataFrame(
        {
            "label": labels,
            "n": n,
            "positives": y_true.sum(axis=0).astype(int),
            "auroc": est_roc,
            "auroc_low": roc_lo,
            "auroc_high": roc_hi,
            "auprc": est_pr,
            "auprc_low": pr_lo,
            "auprc_high": pr_hi,
            "sensitivity": sens,
            "specificity": spec,
        }
    )
    m_roc_lo, m_roc_hi = _bounds(_nanmean_rows(boot_roc)[:, None], alpha)
    m_pr_lo, m_pr_hi = _bounds(_nanmean_rows(boot_pr)[:, None], alpha)
    u_lo, u_hi = _bounds(boot_micro, alpha)
    pooled_sens, pooled_spec = sensitivity_specificity(y_true.ravel(), y_score.ravel(), threshold)
    summary = pd.DataFrame(
        [
            {"label": "macro", "n": n, "positives": int(y_true.sum()),
             "auroc": _nanmean_rows(est_roc[None])[0], "auroc_low": m_roc_lo[0], "auroc_high": m_roc_hi[0],
             "auprc": _nanmean_rows(est_pr[None])[0], "auprc_low": m_pr_lo[0], "auprc_high": m_pr_hi[0],
             "sensitivity": _nanmean_rows(sens[None])[0], "specificity": _nanmean_rows(spec[None])[0]},
            {"label": "micro", "n": n, "positives": int(y_true.sum()), "auroc": float(micro_roc),
             "auroc_low": u_lo[0], "auroc_high": u_hi[0], "auprc": float(micro_pr),
             "auprc_low": u_lo[1], "auprc_high": u_hi[1], "sensitivity": float(pooled_sens[0]),
             "specificity": float(pooled_spec[0])},
        ]
    )  # fmt: skip
    return ClassificationResult(
        table=table,
        summary=summary,
        n_boot=n_boot,
        ci=ci,
        resampled_by="patient" if patient_ids is not None else "image",
    )
