"""Patient-level splits: check that no patient crosses a split, and make new stratified ones.

A model evaluated on images of patients it was trained on looks better than it is (NIH FAQ Q09: the
official lists are split by patient). ``check_splits`` counts images and patients per split and names every
patient found on more than one side. ``make_splits`` assigns whole patients to splits with a seed, by
iterative stratification (Sechidis et al., 2011, greedy): patients with the rarest labels are placed first,
each into the split that still lacks most images of that label, so every split gets about its fraction of
every label as far as the grouping by patient allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.atomic import atomic_paths
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.problems import MAX_EXAMPLES
from cxrlab.tables import FINDINGS_FILE, IMAGES_FILE, load_tables


@dataclass
class SplitCheck:
    """Per split: images and patients; the patients found in more than one split (leaks)."""

    counts: pd.DataFrame  # index split, columns images, patients
    leaked_patients: int
    leaked_images: int
    examples: list[str] = field(default_factory=list)
    no_split_images: int = 0
    no_patient_images: int = 0

    @property
    def ok(self) -> bool:
        return self.leaked_patients == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "splits": {
                str(k): {"images": int(r["images"]), "patients": int(r["patients"])}
                for k, r in self.counts.iterrows()
            },
            "leaked_patients": self.leaked_patients,
            "leaked_images": self.leaked_images,
            "examples": self.examples,
            "images_without_split": self.no_split_images,
            "images_without_patient": self.no_patient_images,
        }


def check_splits(images: pd.DataFrame) -> SplitCheck:
    """Count images/patients per split and find patients on more than one side.

    Images without a split or without a patient id are counted apart (a patient-level check cannot judge
    them: VinDr-CXR publishes no patient ids).
    """
    df = images[["image_id", "split", "patient_id"]].copy()
    no_split = int(df["split"].isna().sum())
    no_patient = int(df["patient_id"].isna().sum())
    df = df[df["split"].notna()]
    counts = df.groupby("split", observed=True).agg(
        images=("image_id", "size"), patients=("patient_id", "nunique")
    )
    known = df[df["patient_id"].notna()]
    per_patient = known.groupby("patient_id", observed=True)["split"].nunique()
    leaked = per_patient[per_patient > 1].index
    leaked_rows = known[known["patient_id"].isin(leaked)]
    examples = []
    for pid in list(leaked[:MAX_EXAMPLES]):
        sides = leaked_rows.loc[leaked_rows["patient_id"] == pid, "split"].value_counts()
        examples.append(f"patient {pid}: " + ", ".join(f"{n} in {s}" for s, n in sides.items()))
    return SplitCheck(
        counts=counts.astype(int),
        leaked_patients=len(leaked),
        leaked_images=len(leaked_rows),
        examples=examples,
        no_split_images=no_split,
        no_patient_images=no_patient,
    )


def patient_label_counts(images: pd.DataFrame, findings: pd.DataFrame) -> tuple[pd.Index, pd.DataFrame]:
    """Per patient: the number of images (column ``__images__``) and of images positive for each label.

    An image counts positive for a label when any finding row names it (any reader), as for stratification
    only the rough frequency matters.
    """
    pairs = findings[["image_id", "label"]].dropna().drop_duplicates()
    pairs = pairs.merge(images[["image_id", "patient_id"]], on="image_id", how="inner")
    per_label = pd.crosstab(pairs["patient_id"], pairs["label"])
    n_images = images.groupby("patient_id", observed=True).size().rename("__images__")
    table = pd.concat([n_images, per_label], axis=1).fillna(0).astype(np.int64)
    return table.index, table


def stratified_patient_split(
    table: pd.DataFrame, fractions: dict[str, float], seed: int = 0
) -> dict[str, str]:
    """Assign each patient (row of ``table``: ``__images__`` then label columns of image counts) to a split.

    Greedy iterative stratification: labels in order of rising frequency; for each, its unassigned patients,
    largest first (like first-fit-decreasing packing; equal sizes in ``seed`` order), each go to the split
    where they best fill the remaining demand for that label (least increase of |demand - placed|), ties
    broken by the demand for images, then by the largest remaining demand for the label. Patients without
    any label are placed last by image counts alone.
    """
    check_fractions(fractions)
    names = list(fractions)
    frac = np.array([fractions[n] for n in names], dtype=float)
    frac = frac / frac.sum()  # removes the rounding that check_fractions tolerates
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))
    counts = table.to_numpy(dtype=np.float64)[order]
    patients = table.index.to_numpy()[order]
    demand = frac[:, None] * counts.sum(axis=0)[None, :]  # splits x (images + labels)
    assigned = np.full(len(patients), -1)
    label_cols = list(range(1, counts.shape[1]))
    label_cols.sort(key=lambda j: (counts[:, j] > 0).sum())
    for j in [*label_cols, 0]:
        rows = np.flatnonzero((counts[:, j] > 0) & (assigned < 0)) if j else np.flatnonzero(assigned < 0)
        rows = rows[np.argsort(-counts[rows, j], kind="stable")]
        for i in rows:
            fit = np.abs(demand[:, j] - counts[i, j]) - np.abs(demand[:, j])
            fit_images = np.abs(demand[:, 0] - counts[i, 0]) - np.abs(demand[:, 0])
            k = int(np.lexsort((-demand[:, j], fit_images, fit))[0])
            assigned[i] = k
            demand[k] -= counts[i]
    return {str(p): names[k] for p, k in zip(patients, assigned, strict=True)}


def parse_fractions(fractions: str, names: str) -> dict[str, float]:
    """``"0.7,0.1,0.2"`` and ``"train,val,test"`` -> {"train": 0.7, ...}, checked."""
    try:
        values = [float(x) for x in fractions.split(",")]
    except ValueError:
        raise ParameterError(
            "fractions", f"must be numbers separated by commas (got '{fractions}')"
        ) from None
    labels = [n.strip() for n in names.split(",") if n.strip()]
    if len(values) != len(labels):
        raise ParameterError(
            "names", f"must give one split per fraction: {len(labels)} for {len(values)} ({names})"
        )
    if len(set(labels)) != len(labels):
        raise ParameterError("names", f"must not repeat a split (got {names})")
    out = dict(zip(labels, values, strict=True))
    check_fractions(out)
    return out


FRACTION_TOLERANCE = 0.005
"""How far the fractions' sum may be from 1: room for ``0.333,0.333,0.334``-style rounding, none for
``0.7,0.7,0.2``."""


def check_fractions(fractions: dict[str, float]) -> None:
    """Each fraction a finite number in [0, 1] and their sum 1 (within :data:`FRACTION_TOLERANCE`).

    A sum other than 1 is refused rather than rescaled: ``0.5,0.1,0.2`` silently becoming 62.5/12.5/25 % is
    not what its writer meant.
    """
    shown = ",".join(f"{v:g}" for v in fractions.values())
    if not fractions:
        raise ParameterError("fractions", "must name at least one share (got none)")
    if any(not np.isfinite(v) or v < 0 or v > 1 for v in fractions.values()):
        raise ParameterError("fractions", f"must each be a number between 0 and 1 (got {shown})")
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > FRACTION_TOLERANCE:
        raise ParameterError(
            "fractions", f"must be shares of the whole that sum to 1 ({shown} sum to {total:g})"
        )


def make_splits(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    fractions: dict[str, float],
    *,
    seed: int = 0,
    within: str | None = None,
) -> pd.DataFrame:
    """A copy of ``images`` with a new patient-level ``split`` (the old one kept in ``previous_split``).

    ``within``: re-split only the images whose current split is this (e.g. NIH's ``train_val`` into
    train/val, keeping the official test set); the others keep theirs.
    """
    if images["patient_id"].isna().all():
        raise CxrlabError(
            "the images table has no patient ids: patient-level splits cannot be made "
            "(VinDr-CXR publishes none)"
        )
    out = images.copy()
    out["previous_split"] = images["split"]
    target = images["split"] == within if within is not None else pd.Series(True, index=images.index)
    target = target.fillna(False).to_numpy(dtype=bool)
    if within is not None and not target.any():
        raise ParameterError("within", f"must be the split of some image (no image has split '{within}')")
    chosen = images[target]
    if within is not None:
        leaked = set(chosen["patient_id"].dropna()) & set(images.loc[~target, "patient_id"].dropna())
        if leaked:
            raise CxrlabError(
                f"{len(leaked)} patient(s) of split '{within}' also have images in other splits "
                f"(e.g. {', '.join(sorted(leaked)[:3])}): fix the existing split first (cxrlab splits check)"
            )
    # Images without a patient id are their own "patient" (nothing else can be grouped with them).
    chosen = chosen.assign(patient_id=chosen["patient_id"].fillna("__image__" + chosen["image_id"]))
    _, table = patient_label_counts(chosen, findings[findings["image_id"].isin(chosen["image_id"])])
    assignment = stratified_patient_split(table, fractions, seed)
    new = chosen["patient_id"].map(assignment).astype("string")
    out.loc[target, "split"] = new.to_numpy()
    out["split"] = out["split"].astype("string")
    return out


def label_balance(images: pd.DataFrame, findings: pd.DataFrame) -> pd.DataFrame:
    """Share of each label's positive images that falls in each split (rows labels, columns splits)."""
    pairs = findings[["image_id", "label"]].dropna().drop_duplicates()
    pairs = pairs.merge(images[["image_id", "split"]], on="image_id")
    table = pd.crosstab(pairs["label"], pairs["split"])
    return table.div(table.sum(axis=1), axis=0)


def write_split_tables(source: str | Path, out: str | Path, images: pd.DataFrame) -> Path:
    """Write the re-split images table and a copy of the findings into ``out`` (both or neither).

    ``out`` equal to ``source`` replaces the images table in place, atomically; otherwise the source
    folder is left untouched.
    """
    source, out = Path(source), Path(out)
    in_place = out.exists() and source.resolve() == out.resolve()
    findings = None if in_place else load_tables(source, validate=False).findings
    targets = [out / IMAGES_FILE] + ([] if findings is None else [out / FINDINGS_FILE])
    with atomic_paths(targets) as temps:
        images.to_parquet(temps[0], index=False, write_page_checksum=True)
        if findings is not None:
            findings.to_parquet(temps[1], index=False, write_page_checksum=True)
    return out
