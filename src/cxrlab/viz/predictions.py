"""Read a model's predictions for a figure or a report: a findings table (Parquet, tables folder, CSV) or a
VinBigData challenge submission, as findings rows whose ``reader`` names the model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.metrics.scoring import is_submission
from cxrlab.metrics.submission import raise_problems, read_prediction_table, read_submission
from cxrlab.tables import conform_findings

__all__ = ["read_predictions"]


def read_predictions(path: str | Path, images: pd.DataFrame | None = None) -> pd.DataFrame:
    """Findings rows of the predictions in ``path``; a submission's rows get the reader ``submission``
    (its file stem when that is more telling); a problem in the file is one error naming it."""
    path = Path(path)
    if is_submission(path):
        preds, problems = read_submission(path, images=images)
        raise_problems(path, problems)
        return conform_findings(preds.drop(columns="class_id").assign(reader=path.stem))
    findings = read_prediction_table(path)
    missing = findings["reader"].isna()
    if missing.any():
        findings.loc[missing, "reader"] = path.stem
    return findings
