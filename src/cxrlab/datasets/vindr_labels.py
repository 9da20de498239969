"""VinDr-CXR label files: reading the box and image-label CSVs of either release, and the rules that
turn readers' rows into findings (see :mod:`cxrlab.datasets.vindr` for the rules in a user's words).

Each rule is one function over the raw rows that reports what it did to a
:class:`~cxrlab.problems.ProblemLog`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.problems import MAX_EXAMPLES, ProblemLog
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, has_box
from cxrlab.taxonomy import NO_FINDING, VINDR, VINDR_CHALLENGE, UnknownLabelError

_HEX_ID = re.compile(r"[0-9a-fA-F]{32}")


def _lower_hex_ids(df: pd.DataFrame, upper: list[str]) -> pd.DataFrame:
    """Lower-case the 32-digit hex ids written with upper-case letters; note each such row in ``upper``."""
    ids = df["image_id"].astype("string")
    hexed = ids.str.fullmatch(_HEX_ID.pattern).fillna(False).to_numpy(dtype=bool)
    changed = hexed & (ids != ids.str.lower()).fillna(False).to_numpy(dtype=bool)
    if not changed.any():
        return df
    if "source" in df:  # a box file: one row per line
        upper.extend(f"{s}: {i}" for s, i in zip(df["source"][changed], ids[changed], strict=True))
    else:  # image labels, one row per cell: count the lines (image, reader)
        lines = df.loc[changed, ["image_id", "reader"]].drop_duplicates()
        upper.extend(
            f"image_labels: {i} {r}" for i, r in zip(lines["image_id"], lines["reader"], strict=True)
        )
    out = df.copy()
    out.loc[changed, "image_id"] = ids[changed].str.lower().to_numpy(dtype=object)
    return out


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a label CSV with ids as strings and header names matched case-insensitively (``rad_ID``)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CxrlabError(f"{path}: cannot read as CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    lower = {c.lower(): c for c in df.columns}
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise CxrlabError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    return df.rename(columns={lower[c.lower()]: c for c in required})


def _coords(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c in BOX_COLUMNS:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            raise CxrlabError(
                f"{path}: column {c} has non-numeric value(s) {df.loc[bad, c].head(3).tolist()}"
            )
        out[c] = values.astype(float)
    return out


def _box_rows(path: Path, split: str, *, has_reader: bool, challenge: bool) -> pd.DataFrame:
    required = ["image_id", "class_name", *BOX_COLUMNS]
    if has_reader:
        required.insert(1, "rad_id")
    if challenge:
        required.append("class_id")
    df = _read_csv(path, required)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].str.strip(),
            "split": split,
            "reader": df["rad_id"].str.strip() if has_reader else CONSENSUS,
            "label": df["class_name"].str.strip(),
        }
    )
    out = pd.concat([out, _coords(df, path)], axis=1)
    out["source"] = path.name
    if challenge:
        out["class_id"] = pd.to_numeric(df["class_id"], errors="coerce")
    return out


def _image_label_rows(path: Path, split: str, *, has_reader: bool) -> pd.DataFrame:
    """Every cell of an image_labels CSV as (image_id, reader, label, ticked) rows, labels as written."""
    df = _read_csv(path, ["image_id", "rad_id"] if has_reader else ["image_id"])
    label_columns = [c for c in df.columns if c not in ("image_id", "rad_id")]
    long = df.melt(id_vars=["image_id", "rad_id"] if has_reader else ["image_id"], value_vars=label_columns)
    value = pd.to_numeric(long["value"], errors="coerce")
    bad = value.isna() & long["value"].notna()
    if bad.any():
        raise CxrlabError(
            f"{path}: label cells must be 0 or 1; found {long.loc[bad, 'value'].head(3).tolist()}"
        )
    return pd.DataFrame(
        {
            "image_id": long["image_id"].str.strip().to_numpy(),
            "split": split,
            "reader": long["rad_id"].str.strip().to_numpy() if has_reader else CONSENSUS,
            "label": long["variable"].to_numpy(),
            "ticked": (value.fillna(0) > 0).to_numpy(),
        }
    )


def _row_examples(df: pd.DataFrame, mask: np.ndarray | pd.Series, with_box: bool = True) -> list[str]:
    cols = ["image_id", "reader", "label"] + (BOX_COLUMNS if with_box else [])
    rows = df.loc[np.asarray(mask, dtype=bool), cols].head(MAX_EXAMPLES)
    return [" ".join(f"{c}={r[c]}" for c in cols) for _, r in rows.iterrows()]


def _canonical_labels(
    df: pd.DataFrame, problems: ProblemLog, allow_unknown: bool, where: str
) -> pd.DataFrame:
    names = df["label"].dropna().unique()
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for name in names:
        found = VINDR.match(name)
        if found is None:
            unknown.append(name)
            mapping[name] = name
        else:
            mapping[name] = found
    if unknown:
        hints = []
        for name in sorted(unknown):
            try:
                VINDR.canonical(name)
            except UnknownLabelError as exc:
                hints.append(str(exc).removeprefix("unknown vindr label "))
        if not allow_unknown:
            raise CxrlabError(
                f"{where}: {len(unknown)} unknown label(s): {'; '.join(hints[:10])} "
                "(allow_unknown keeps them: --allow-unknown on the command line)"
            )
        mask = df["label"].isin(unknown)
        problems.add(
            "unknown-label",
            "unknown label: kept as written (allow_unknown)",
            [f"{n} ({int((df['label'] == n).sum())} rows)" for n in sorted(unknown)],
            count=int(mask.sum()),
        )
    out = df.copy()
    out["label"] = out["label"].map(mapping)
    if out["label"].isna().any():
        raise CxrlabError(f"{where}: {int(out['label'].isna().sum())} row(s) without a class name")
    return out


def _check_class_ids(df: pd.DataFrame, problems: ProblemLog) -> None:
    expected = df["label"].map(lambda n: VINDR_CHALLENGE.class_ids.get(n, np.nan))
    bad = expected.notna() & (expected != df["class_id"])
    problems.add(
        "class-id-mismatch",
        "class_id disagrees with class_name: the class_name is used",
        [f"{r.image_id} {r.label} class_id={r.class_id}" for r in df[bad].head(MAX_EXAMPLES).itertuples()],
        count=int(bad.sum()),
    )


def _merge_image_labels(boxes: pd.DataFrame, ticks: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    """Add image-label ticks that the box file lacks as image-level rows; report both disagreements."""
    if ticks.empty:
        return boxes
    key = ["image_id", "reader", "label"]
    in_boxes = boxes[key].drop_duplicates()
    images_with_ticks = ticks[["image_id", "reader"]].drop_duplicates()  # rows of the file, ticked or not
    ticks = ticks[ticks["ticked"].to_numpy(dtype=bool)]
    merged = ticks.drop_duplicates(key).merge(in_boxes, on=key, how="left", indicator=True)
    only_ticks = merged[merged["_merge"] == "left_only"][[*key, "split"]]
    local_only = only_ticks[only_ticks["label"].isin(VINDR.local)]
    problems.add(
        "tick-without-box-row",
        "local label ticked in image_labels without a row in the box file: "
        "kept as an image-level finding (no box)",
        [f"{r.image_id} {r.reader} {r.label}" for r in local_only.head(MAX_EXAMPLES).itertuples()],
        count=len(local_only),
    )
    # Box-file labels of (image, reader) pairs that appear in image_labels but are not ticked there.
    covered = in_boxes.merge(images_with_ticks, on=["image_id", "reader"])
    missing = covered.merge(ticks[key].drop_duplicates(), on=key, how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    problems.add(
        "box-label-not-ticked",
        "label in the box file not ticked in image_labels: kept (the box file wins)",
        [f"{r.image_id} {r.reader} {r.label}" for r in missing.head(MAX_EXAMPLES).itertuples()],
        count=len(missing),
    )
    added = only_ticks.assign(**{c: np.nan for c in BOX_COLUMNS}, source="image_labels")
    return pd.concat([boxes, added], ignore_index=True)


def _clean_boxes(df: pd.DataFrame, sizes: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    """Clip boxes to the image, strip the coordinates of boxes that are not boxes (kept as labels)."""
    df = df.copy()
    xy = np.array(df[BOX_COLUMNS].to_numpy(dtype=float), copy=True)
    nan = np.isnan(xy)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    problems.add(
        "box-partial",
        "box with some coordinates missing: coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, partial),
        count=int(partial.sum()),
    )
    xy[partial] = np.nan
    boxed = ~np.isnan(xy).any(axis=1)
    size = df[["image_id"]].merge(sizes, on="image_id", how="left")
    w = size["width"].to_numpy(dtype=float)
    h = size["height"].to_numpy(dtype=float)
    inverted = boxed & ((xy[:, 2] <= xy[:, 0]) | (xy[:, 3] <= xy[:, 1]))
    upper_x = np.where(np.isnan(w), np.inf, w)
    upper_y = np.where(np.isnan(h), np.inf, h)
    outside = (
        boxed
        & ~inverted
        & ((xy[:, 2] <= 0) | (xy[:, 3] <= 0) | (xy[:, 0] >= upper_x) | (xy[:, 1] >= upper_y))
    )
    clipped = xy.copy()
    clipped[:, [0, 2]] = np.clip(xy[:, [0, 2]], 0, upper_x[:, None])
    clipped[:, [1, 3]] = np.clip(xy[:, [1, 3]], 0, upper_y[:, None])
    changed = boxed & ~inverted & ~outside & (np.abs(clipped - xy) > 0).any(axis=1)
    degenerate = (
        boxed & ~inverted & ~outside & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    )
    problems.add(
        "box-outside",
        "box partly outside the image"
        + ": "
        + (
            "clipped to the image"
            + ("" if np.isfinite(upper_x).all() else " (to x, y >= 0 where the size is unknown)")
        ),
        _row_examples(df, changed & ~degenerate),
        count=int((changed & ~degenerate).sum()),
    )
    problems.add(
        "box-inverted",
        "box with x_max <= x_min or y_max <= y_min: "
        "coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, inverted | degenerate),
        count=int((inverted | degenerate).sum()),
    )
    problems.add(
        "box-off-image",
        "box entirely outside the image: coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, outside),
        count=int(outside.sum()),
    )
    clipped[inverted | degenerate | outside] = np.nan
    df[BOX_COLUMNS] = clipped
    return df


def _no_finding_conflicts(df: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    is_nf = (df["label"] == NO_FINDING).to_numpy()
    positive = df.loc[~is_nf, ["image_id", "reader"]].drop_duplicates()
    boxed = df.loc[~is_nf & has_box(df), ["image_id", "reader"]]
    nf = df.loc[is_nf, ["image_id", "reader"]].reset_index()
    conflict_idx = nf.merge(positive, on=["image_id", "reader"])["index"].to_numpy()
    with_box = set(map(tuple, boxed.drop_duplicates().to_numpy()))
    examples = [
        f"{df.at[i, 'image_id']} {df.at[i, 'reader']}"
        + (
            " (with boxes)"
            if (df.at[i, "image_id"], df.at[i, "reader"]) in with_box
            else " (image-level labels)"
        )
        for i in conflict_idx[:MAX_EXAMPLES]
    ]
    problems.add(
        "no-finding-conflict",
        "'No finding' from a reader who reports findings on the same image: "
        "the findings are kept, that reader's 'No finding' is dropped",
        examples,
        count=len(conflict_idx),
    )
    return df.drop(index=conflict_idx)


def _duplicates(df: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    key = ["image_id", "reader", "label", *BOX_COLUMNS]
    dup = df.duplicated(key, keep="first").to_numpy()
    problems.add("duplicate-row", "duplicate row: kept once", _row_examples(df, dup), count=int(dup.sum()))
    return df[~dup]


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The canonical row order: image, reader, label, then the box (image-level rows last)."""
    return findings.sort_values(
        ["image_id", "reader", "label", *BOX_COLUMNS], na_position="last", kind="stable"
    ).reset_index(drop=True)


def _empty_raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": pd.Series(dtype=str),
            "split": pd.Series(dtype=str),
            "reader": pd.Series(dtype=str),
            "label": pd.Series(dtype=str),
            **{c: pd.Series(dtype=float) for c in BOX_COLUMNS},
        }
    )
