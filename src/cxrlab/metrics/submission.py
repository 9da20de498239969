"""The VinBigData challenge's submission CSV: reading it with a message per problem, and writing one.

A submission is ``image_id,PredictionString``, one row per image; the string repeats
``class_id confidence x_min y_min x_max y_max`` (boxes in pixels of the original DICOM, origin top-left), and
an image predicted normal is ``14 1 0 0 1 1``. Reading checks everything the challenge's scorer would trip on
(malformed strings, class ids outside 0-14, confidences outside [0, 1], boxes outside the image, duplicate
rows, unknown or missing images) and reports every problem, one line each, instead of stopping at the first.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.atomic import atomic_path, refuse_inputs
from cxrlab.csvfiles import no_field_limit, strict_frame
from cxrlab.errors import CxrlabError
from cxrlab.problems import Problem
from cxrlab.tables import conform_findings, images_of_split, load_tables, read_parquet, select_readers
from cxrlab.taxonomy import CHALLENGE_NO_FINDING_ID, NO_FINDING, VINDR_CHALLENGE

HEADER = ("image_id", "PredictionString")
NORMAL_STRING = f"{CHALLENGE_NO_FINDING_ID} 1 0 0 1 1"
NORMAL_BOX = (0.0, 0.0, 1.0, 1.0)
MAX_PROBLEMS = 50
N_CLASSES = CHALLENGE_NO_FINDING_ID + 1
PREDICTION_COLUMNS = ["image_id", "class_id", "label", "score", "x_min", "y_min", "x_max", "y_max"]


class SubmissionError(CxrlabError):
    """An invalid submission or prediction table: one line per problem."""


def raise_problems(path: str | Path, problems: list[Problem], *, limit: int = MAX_PROBLEMS) -> None:
    """Raise :class:`SubmissionError` listing the problems of single rows (at most ``limit`` lines, then a
    count): a file that fails any check is not scored at all."""
    if not problems:
        return
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"{path}: ... and {len(problems) - limit} more problem(s)")
    lines.append(f"{path}: {len(problems)} problem(s) in all; nothing was scored")
    raise SubmissionError("\n".join(lines))


def _fmt_number(value: float) -> str:
    """Plain decimal, at most 6 decimals, no exponent: 1, 0.5, 0.000123."""
    return np.format_float_positional(float(value), precision=6, trim="-")


def parse_prediction_string(text: str) -> tuple[np.ndarray | None, str | None]:
    """(k, 6) float array of ``class_id confidence x_min y_min x_max y_max`` or ``(None, problem)``."""
    tokens = text.split()
    if not tokens:
        return None, f"empty PredictionString (an image predicted normal is '{NORMAL_STRING}')"
    if len(tokens) % 6:
        return None, (
            f"malformed PredictionString: {len(tokens)} numbers, not a multiple of 6 "
            "(class_id confidence x_min y_min x_max y_max)"
        )
    try:
        values = np.array([float(t) for t in tokens]).reshape(-1, 6)
    except ValueError:
        bad = next(t for t in tokens if not _is_float(t))
        return None, f"malformed PredictionString: '{bad}' is not a number"
    if not np.isfinite(values).all():
        return None, "malformed PredictionString: NaN or infinite value"
    return values, None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def check_predictions(
    preds: pd.DataFrame,
    *,
    file: str | Path,
    where: Iterable[str],
    images: pd.DataFrame | None = None,
) -> list[Problem]:
    """Per-prediction checks shared by submissions and findings tables: image ids, confidences, boxes.

    ``preds`` has ``image_id``, ``score`` and the box columns (NaN box: an image-level prediction);
    ``where`` names each row's origin in ``file`` (a CSV line or a table row).
    """
    file = str(file)
    where = list(where)
    problems: list[Problem] = []
    known = None if images is None else set(images["image_id"].astype(str))
    size = None
    if images is not None:
        size = images.set_index(images["image_id"].astype(str))[["width", "height"]]
    widths = heights = None
    if size is not None:
        ids = preds["image_id"].astype(str)
        widths = ids.map(size["width"].astype("Float64").astype(float)).to_numpy(dtype=float)
        heights = ids.map(size["height"].astype("Float64").astype(float)).to_numpy(dtype=float)
    box = preds[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=float)
    score = preds["score"].to_numpy(dtype=float)
    for i, image_id in enumerate(preds["image_id"].astype(str)):
        if known is not None and image_id not in known:
            unknown = "unknown image id (not in the truth's images table)"
            problems.append(Problem.at(file, where[i], "unknown-image", unknown, image_id))
        s = score[i]
        if not (0.0 <= s <= 1.0):
            problems.append(
                Problem.at(
                    file, where[i], "confidence", f"confidence {_fmt_number(s)} outside [0, 1]", image_id
                )
            )
        x0, y0, x1, y1 = box[i]
        if math.isnan(x0):
            continue
        text = None
        if x0 < 0 or y0 < 0:
            text = f"box {_fmt_box(box[i])} starts outside the image (negative coordinate)"
        elif x1 <= x0 or y1 <= y0:
            text = f"box {_fmt_box(box[i])} has x_max <= x_min or y_max <= y_min"
        elif widths is not None and heights is not None and (x1 > widths[i] or y1 > heights[i]):
            text = f"box {_fmt_box(box[i])} ends outside the {widths[i]:.0f} x {heights[i]:.0f} image"
        if text:
            problems.append(Problem.at(file, where[i], "bad-box", text, image_id))
    return problems


def _fmt_box(box: np.ndarray) -> str:
    return " ".join(_fmt_number(v) for v in box)


def _read_rows(path: Path) -> list[list[str]]:
    """The CSV's rows; an unreadable file or a CSV syntax error is a :class:`SubmissionError`."""
    try:
        with no_field_limit(), path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                rows = list(reader)
            except csv.Error as exc:
                raise SubmissionError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{path}: cannot read the submission ({exc})") from None
    if not rows or tuple(c.strip() for c in rows[0][:2]) != HEADER:
        found = ",".join(rows[0])[:200] if rows else "an empty file"
        raise SubmissionError(f"{path}: line 1: the header must be '{','.join(HEADER)}', found '{found}'")
    return rows


def _parse_row(
    row: list[str], file: str, where: str, first_line: dict[str, int]
) -> tuple[str, np.ndarray] | Problem:
    """One data row: its image id and (k, 6) predictions, or the problem with it."""
    if len(row) != 2:
        return Problem.at(file, where, "fields", f"{len(row)} fields, expected 2", row[0] if row else None)
    image_id, text = row[0].strip(), row[1]
    if not image_id:
        return Problem.at(file, where, "empty-image-id", "empty image_id")
    if image_id in first_line:
        first = f"duplicate row (the image's first row is line {first_line[image_id]})"
        return Problem.at(file, where, "duplicate-row", first, image_id)
    first_line[image_id] = int(where.split()[1])
    values, problem = parse_prediction_string(text)
    if problem:
        return Problem.at(file, where, "prediction-string", problem, image_id)
    assert values is not None
    cls = values[:, 0]
    bad_cls = (cls != np.round(cls)) | (cls < 0) | (cls >= N_CLASSES) | ~_integer_tokens(text)
    if bad_cls.any():
        token = text.split()[6 * int(np.flatnonzero(bad_cls)[0])]
        message = f"class id '{token}' is not an integer 0-{N_CLASSES - 1}"
        return Problem.at(file, where, "class-id", message, image_id)
    return image_id, values


def _prediction_frame(records: list[np.ndarray], owners: list[str]) -> pd.DataFrame:
    table = np.concatenate(records) if records else np.zeros((0, 6))
    preds = pd.DataFrame(
        {
            "image_id": pd.array(owners, dtype="string"),
            "class_id": table[:, 0].astype(np.int64),
            "score": table[:, 1],
            "x_min": table[:, 2],
            "y_min": table[:, 3],
            "x_max": table[:, 4],
            "y_max": table[:, 5],
        }
    )
    preds.insert(2, "label", [VINDR_CHALLENGE.labels[c] for c in preds["class_id"]])
    return preds


def read_submission(
    path: str | Path,
    *,
    images: pd.DataFrame | None = None,
    expected: Iterable[str] | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Parse a submission CSV into one row per prediction, and list its problems.

    ``images`` (an images table) enables the unknown-image and box-size checks; ``expected`` (image ids)
    the missing-image check. Returns ``(predictions, problems)``; predictions have the columns
    ``image_id, class_id, label, score, x_min, y_min, x_max, y_max`` (``label`` the challenge class name).
    """
    path = Path(path)
    rows = _read_rows(path)
    problems: list[Problem] = []
    records: list[np.ndarray] = []
    owners: list[str] = []
    lines: list[str] = []
    first_line: dict[str, int] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        parsed = _parse_row(row, str(path), f"line {line_no}", first_line)
        if isinstance(parsed, Problem):
            problems.append(parsed)
            continue
        image_id, values = parsed
        records.append(values)
        owners.extend([image_id] * len(values))
        lines.extend([f"line {line_no}"] * len(values))
    preds = _prediction_frame(records, owners)
    problems += check_predictions(preds, file=path, where=lines, images=images)
    if expected is not None:
        missing = [i for i in expected if i not in first_line]
        problems += [
            Problem.at(
                str(path), "no row for", "missing-image", "missing image (every test image needs a row)", i
            )
            for i in missing
        ]
    problems.sort(key=lambda p: _line_key(p.where))
    return preds, problems


def _integer_tokens(text: str) -> np.ndarray:
    """Whether each class-id token is written as an integer (``3``, not ``3.0``)."""
    tokens = text.split()[::6]
    return np.array([t.lstrip("+-").isdigit() for t in tokens])


def _line_key(where: str) -> tuple[int, int]:
    """Problems of numbered lines first, in line order; then those of no line (missing images)."""
    parts = where.split()
    if len(parts) >= 2 and parts[0] == "line" and parts[1].isdigit():
        return (0, int(parts[1]))
    return (1, 0)


def make_submission(
    findings: pd.DataFrame,
    *,
    image_ids: Iterable[str] | None = None,
    images: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """A submission (``image_id, PredictionString``) from a findings table of predictions.

    Labels map to the challenge's classes through :data:`cxrlab.taxonomy.VINDR_CHALLENGE`; ``No finding``
    becomes ``14 <score> 0 0 1 1``; rows of other labels, and box classes without a box, are dropped and
    counted. Every image of ``image_ids`` (default: those of ``findings``) gets a row; an image without a
    prediction gets ``14 1 0 0 1 1``. Boxes are rounded to whole pixels (as the challenge's own train.csv
    gives them), at least one pixel wide, inside the image where ``images`` gives its size; confidences are
    written with at most 6 decimals, predictions by descending confidence.

    Returns ``(submission, counts)``; counts has ``images``, ``predictions``, ``dropped_label``,
    ``dropped_no_box``, ``normal_filled``.
    """
    df = findings.copy()
    ids = list(dict.fromkeys(df["image_id"].astype(str))) if image_ids is None else list(image_ids)
    matched = df["label"].astype(str).map(VINDR_CHALLENGE.match)
    counts = {"dropped_label": int(matched.isna().sum())}
    df = df[matched.notna()].assign(label=matched[matched.notna()])
    box = df[["x_min", "y_min", "x_max", "y_max"]].to_numpy(dtype=float, copy=True)
    no_box = np.isnan(box).any(axis=1)
    normal = (df["label"] == NO_FINDING).to_numpy()
    box[normal & no_box] = NORMAL_BOX
    keep = normal | ~no_box
    counts["dropped_no_box"] = int((~keep).sum())
    df, box = df[keep], box[keep]
    box = np.rint(box)
    if images is not None:
        size = images.set_index(images["image_id"].astype(str))
        ids_ = df["image_id"].astype(str)
        w = ids_.map(size["width"].astype("Float64").astype(float)).to_numpy(dtype=float)
        h = ids_.map(size["height"].astype("Float64").astype(float)).to_numpy(dtype=float)
        for lo, hi, limit in ((0, 2, w), (1, 3, h)):
            known = ~np.isnan(limit)
            box[known, lo] = np.clip(box[known, lo], 0, np.maximum(limit[known] - 1, 0))
            box[known, hi] = np.clip(box[known, hi], 0, limit[known])
    box[:, 0:2] = np.maximum(box[:, 0:2], 0)
    box[:, 2] = np.maximum(box[:, 2], box[:, 0] + 1)
    box[:, 3] = np.maximum(box[:, 3], box[:, 1] + 1)
    cls = df["label"].map(VINDR_CHALLENGE.class_ids).to_numpy(dtype=np.int64)
    score = df["score"].to_numpy(dtype=float)
    order = np.lexsort((-score, df["image_id"].astype(str).to_numpy()))
    strings: dict[str, list[str]] = {}
    image_col = df["image_id"].astype(str).to_numpy()
    for k in order:
        parts = [str(cls[k]), _fmt_number(score[k]), *(str(int(v)) for v in box[k])]
        strings.setdefault(image_col[k], []).append(" ".join(parts))
    out = pd.DataFrame(
        {"image_id": ids, "PredictionString": [" ".join(strings.get(i, [NORMAL_STRING])) for i in ids]}
    )
    counts["images"] = len(ids)
    counts["predictions"] = int(sum(len(strings.get(i, [])) for i in ids))
    counts["normal_filled"] = sum(1 for i in ids if i not in strings)
    wanted = set(ids)
    counts["outside_image_ids"] = sum(1 for i in strings if i not in wanted)
    return out, counts


def write_submission(submission: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically (a temporary name, then renamed)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        submission[list(HEADER)].to_csv(tmp, index=False)
    return path


def read_prediction_table(path: str | Path) -> pd.DataFrame:
    """A findings table of predictions: Parquet file, tables folder, or CSV with the findings columns."""
    path = Path(path)
    if path.is_dir():
        return load_tables(path, validate=False).findings
    if not path.is_file():
        raise CxrlabError(f"{path}: no such prediction file")
    if path.suffix.lower() == ".parquet":
        return conform_findings(read_parquet(path))
    return _findings_csv(path)


def _findings_csv(path: Path) -> pd.DataFrame:
    """A findings CSV read strictly (rows as wide as the header), numbers checked column by column.

    Ids like VinDr's hex strings (or NIH's zero-padded names) stay text; an empty coordinate is NaN (an
    image-level prediction).
    """
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CxrlabError(f"{path}: not a UTF-8 findings CSV ({exc})") from None
    frame = strict_frame(text, path)
    for column in ("x_min", "y_min", "x_max", "y_max", "score"):
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column].str.strip().replace("", np.nan), errors="coerce")
        bad = values.isna() & (frame[column].str.strip() != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise CxrlabError(
                f"{path}: row {row + 2}, column {column}: {frame[column].iat[row]!r} is not a number"
            )
        frame[column] = values.astype(float)
    try:
        return conform_findings(frame)
    except CxrlabError as exc:
        raise CxrlabError(f"{path}: {exc}") from None


def make_submission_file(
    pred: str | Path,
    out: str | Path,
    *,
    images: str | Path | None = None,
    split: str | None = None,
    reader: str | None = None,
) -> dict[str, int]:
    """:func:`make_submission` from files: ``pred`` a findings table or tables folder, ``images`` a tables
    folder whose images (of ``split``) each get a row. Returns the counts."""
    pred = Path(pred)
    refuse_inputs(out, [pred, images])
    findings, _ = select_readers(read_prediction_table(pred), reader, default="only", where=str(pred))
    image_table = None
    if images is not None:
        image_table = load_tables(images, validate=False).images
    elif pred.is_dir():
        image_table = load_tables(pred, validate=False).images
    if image_table is not None:
        image_table = images_of_split(image_table, split, where=str(images or pred))
    ids = None if image_table is None else image_table["image_id"].astype(str).tolist()
    submission, counts = make_submission(findings, image_ids=ids, images=image_table)
    write_submission(submission, out)
    return counts


def check_submission_file(
    path: str | Path, truth: str | Path, *, split: str | None = None
) -> tuple[int, int]:
    """Check a submission against a tables folder's images (of ``split``): raises with every problem.

    Returns ``(rows, predictions)`` of a valid submission.
    """
    tables = load_tables(truth, validate=False)
    expected = images_of_split(tables.images, split, where=str(truth))
    preds, problems = read_submission(path, images=tables.images, expected=expected["image_id"].astype(str))
    raise_problems(path, problems)
    return int(preds["image_id"].nunique()), len(preds)
