"""Label statistics of any images/findings tables (NIH, VinDr-CXR, a model's predictions): positives per
label overall, per split, by sex and by age band, and label co-occurrence; as rich tables or JSON.

Counts are images, not rows: an image with three boxes of one label counts once. With several readers per
image (VinDr-CXR training images have three) an image is positive for a label by a rule, stated in the
output: the reader chosen with ``reader=``; otherwise the ``consensus`` reader where an image has one, else
a strict majority of the human readers who read the image (readers whose scores are all 1; model readers
with probabilities are left out of the vote unless chosen by name).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from cxrlab.problems import examples
from cxrlab.tables import CONSENSUS, human_readers, select_readers
from cxrlab.taxonomy import NO_FINDING

AGE_BANDS: tuple[tuple[float, float, str], ...] = (
    (0, 20, "0-19"),
    (20, 40, "20-39"),
    (40, 60, "40-59"),
    (60, 80, "60-79"),
    (80, np.inf, "80+"),
)
UNKNOWN = "unknown"


@dataclass
class LabelStats:
    rule: str
    images: int
    labels: list[str]
    overall: pd.Series  # label -> positive images
    groups: dict[str, pd.DataFrame]  # "split"/"sex"/"age" -> labels x group values
    group_sizes: dict[str, pd.Series]  # "split"/"sex"/"age" -> images per group value
    cooccurrence: pd.DataFrame  # labels x labels, images positive for both

    def to_json(self) -> dict[str, Any]:
        def ints(series: pd.Series) -> dict[str, int]:
            return {str(k): int(v) for k, v in series.items()}

        return {
            "rule": self.rule,
            "images": self.images,
            "labels": self.labels,
            "positives": ints(self.overall),
            "by": {
                name: {
                    "images": ints(self.group_sizes[name]),
                    "positives": {str(g): ints(table[g]) for g in table.columns},
                }
                for name, table in self.groups.items()
            },
            "cooccurrence": {str(a): ints(self.cooccurrence.loc[a]) for a in self.cooccurrence.index},
        }


def age_band(age: pd.Series) -> pd.Series:
    """Ages in years -> ``0-19``, ``20-39``, ``40-59``, ``60-79``, ``80+`` or ``unknown``."""
    values = pd.to_numeric(age, errors="coerce").astype("float64").to_numpy()
    out = np.full(len(values), UNKNOWN, dtype=object)
    for low, high, name in AGE_BANDS:
        out[(values >= low) & (values < high)] = name
    return pd.Series(out, index=age.index, dtype="string")


def positive_pairs(findings: pd.DataFrame, reader: str | None = None) -> tuple[pd.DataFrame, str]:
    """The (image_id, label) pairs counted positive, and the rule used, in words.

    The readers are :func:`cxrlab.tables.select_readers`' ``consensus-per-image``: the consensus where an
    image has one, else its human readers, who vote (a strict majority of those who read the image).
    """
    f = findings.dropna(subset=["image_id", "reader", "label"])
    if reader is not None:
        chosen, _ = select_readers(f, reader, where="the findings")
        return chosen[["image_id", "label"]].drop_duplicates(), f"reader '{reader}' only"
    chosen, _ = select_readers(f, default="consensus-per-image")
    is_consensus = (chosen["reader"] == CONSENSUS).to_numpy()
    consensus = chosen.loc[is_consensus, ["image_id", "label"]].drop_duplicates()
    with_consensus = set(consensus["image_id"])
    rest = chosen.loc[~is_consensus, ["image_id", "reader", "label"]]
    readers_per_image = rest.groupby("image_id", observed=True)["reader"].nunique()
    votes = (
        rest.drop_duplicates().groupby(["image_id", "label"], observed=True)["reader"].nunique().reset_index()
    )
    # numpy counts: on an empty vote frame (every image has a consensus) pandas keeps the string dtype
    n_votes = votes["reader"].to_numpy(dtype=np.int64)
    n_readers = votes["image_id"].map(readers_per_image).to_numpy(dtype=np.int64)
    majority = votes.loc[2 * n_votes > n_readers, ["image_id", "label"]]
    humans = human_readers(findings)
    left_out = sorted(set(map(str, f["reader"].unique())) - set(humans) - {CONSENSUS}) if humans else []
    rule = _rule(len(with_consensus), readers_per_image, left_out)
    return pd.concat([consensus, majority], ignore_index=True), rule


def _rule(n_consensus: int, readers_per_image: pd.Series, left_out: list[str]) -> str:
    """The counting rule in words, as the output states it."""
    parts = []
    if n_consensus:
        parts.append(f"the '{CONSENSUS}' reader on the {n_consensus:,} image(s) that have one")
    if len(readers_per_image):
        most = int(readers_per_image.max())
        if most == 1:
            parts.append(f"each image's single reader on {len(readers_per_image):,} image(s)")
        else:
            parts.append(
                f"a strict majority of the readers of each image on {len(readers_per_image):,} image(s) "
                f"(up to {most} readers per image)"
            )
    if left_out:
        parts.append(f"model readers left out: {', '.join(examples(left_out))}")
    return "; ".join(parts) or "no findings"


def _label_order(labels: list[str]) -> list[str]:
    return sorted((x for x in labels if x != NO_FINDING), key=str.lower) + [
        x for x in labels if x == NO_FINDING
    ]


def label_statistics(
    images: pd.DataFrame, findings: pd.DataFrame, *, reader: str | None = None
) -> LabelStats:
    """Positive images per label overall, per split, sex and age band, and the co-occurrence matrix."""
    pairs, rule = positive_pairs(findings, reader)
    pairs = pairs[pairs["image_id"].isin(images["image_id"])]
    labels = _label_order([str(x) for x in pairs["label"].unique()])
    ids = images["image_id"].astype("string").to_numpy(dtype=object)
    row = pd.Index(ids).get_indexer(pairs["image_id"].astype("string").to_numpy(dtype=object))
    col = pd.Index(labels).get_indexer(pairs["label"].astype("string").to_numpy(dtype=object))
    matrix = np.zeros((len(ids), len(labels)), dtype=np.int64)
    matrix[row, col] = 1
    overall = pd.Series(matrix.sum(axis=0), index=labels, dtype=np.int64)
    keys = {
        "split": images["split"].astype("string").fillna("(none)"),
        "sex": images["sex"].astype("string").fillna(UNKNOWN),
        "age": age_band(images["age"]),
    }
    groups: dict[str, pd.DataFrame] = {}
    sizes: dict[str, pd.Series] = {}
    frame = pd.DataFrame(matrix, columns=labels)
    for name, key in keys.items():
        key = key.reset_index(drop=True)
        values = _group_order(name, key.unique().tolist())
        table = frame.groupby(key.to_numpy(dtype=object)).sum().T.reindex(columns=values, fill_value=0)
        groups[name] = table.astype(np.int64)
        sizes[name] = key.value_counts().reindex(values, fill_value=0).astype(np.int64)
    co = pd.DataFrame(matrix.T @ matrix, index=labels, columns=labels)
    return LabelStats(rule, len(ids), labels, overall, groups, sizes, co)


def _group_order(name: str, values: list[str]) -> list[str]:
    if name == "age":
        order = [b[2] for b in AGE_BANDS] + [UNKNOWN]
        return [v for v in order if v in values]
    tail = [v for v in values if v in (UNKNOWN, "(none)")]
    preferred = {"split": ["train", "train_val", "val", "valid", "test"], "sex": ["F", "M", "O"]}[name]
    head = [v for v in preferred if v in values]
    middle = sorted(v for v in values if v not in head and v not in tail)
    return head + middle + tail


def _cell(n: int, total: int, percent: bool = True) -> str:
    return f"{n:,} ({100 * n / total:.1f}%)" if total and percent else f"{n:,}"


def render(stats: LabelStats, console: Console, *, cooccurrence: bool = True) -> None:
    """Print the tables: overall + per split, by sex, by age band, then co-occurrence."""
    console.print(f"[bold]{stats.images:,} images[/bold]; positive means: {stats.rule}")
    titles = {"split": "per split", "sex": "by sex", "age": "by age band"}
    for name, table in stats.groups.items():
        sizes = stats.group_sizes[name]
        out = Table(title=f"Positive images per label, {titles[name]}", title_justify="left")
        out.add_column("label", no_wrap=True)
        out.add_column(f"all\n{stats.images:,}", justify="right")
        percent = len(table.columns) <= 3  # wider tables show counts only, to fit a terminal
        for g in table.columns:
            out.add_column(f"{g}\n{int(sizes[g]):,}", justify="right")
        for label in stats.labels:
            cells = [_cell(int(table.loc[label, g]), int(sizes[g]), percent) for g in table.columns]
            out.add_row(label, _cell(int(stats.overall[label]), stats.images, percent), *cells)
        console.print(out)
    if cooccurrence and stats.labels:
        co = Table(
            title="Co-occurrence: images positive for both labels (diagonal: positives)", title_justify="left"
        )
        co.add_column("label", no_wrap=True)
        for i, _ in enumerate(stats.labels, 1):
            co.add_column(str(i), justify="right")
        for i, a in enumerate(stats.labels, 1):
            co.add_row(f"{i} {a}", *(f"{int(stats.cooccurrence.loc[a, b]):,}" for b in stats.labels))
        console.print(co)
