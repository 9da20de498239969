"""What every dataset index returns: the two tables, the problems found, and one report shape.

``NihIndex`` and ``VindrIndex`` differ in what they know about their release (a Data_Entry revision, a
folder layout); everything a user or a script reads first is the same for both, so that one JSON reader
serves every dataset: ``report()`` gives counts (images, patients, splits, findings, boxes, readers, images
per label), the notes, every problem (:class:`cxrlab.problems.Problem`), and the dataset's own fields;
``write()`` puts the tables and that report in a folder, all files or none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from cxrlab.problems import Problem
from cxrlab.tables import has_box, save_tables


@dataclass
class DatasetIndex:
    """The images and findings tables of one release, with every problem found while reading it."""

    images: pd.DataFrame
    findings: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # role -> file read ("entry": "Data_Entry...")

    dataset: ClassVar[str] = ""
    report_file: ClassVar[str] = "index_report.json"

    def details(self) -> dict[str, Any]:
        """The release's own facts for the report (revision, layout, ...)."""
        return {}

    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def report(self) -> dict[str, Any]:
        """JSON-ready: the counts a user checks first, the notes, every problem, then :meth:`details`."""
        f = self.findings
        boxed = has_box(f)
        splits = self.images["split"].fillna("(none)").value_counts()
        labelled = f[["image_id", "label"]].drop_duplicates()["label"].value_counts().sort_index()
        return {
            "dataset": self.dataset,
            "sources": dict(self.sources),
            "images": len(self.images),
            "patients": int(self.images["patient_id"].nunique()),
            "splits": {str(k): int(v) for k, v in splits.items()},
            "findings": len(f),
            "boxes": int(boxed.sum()),
            "images_with_boxes": int(f.loc[boxed, "image_id"].nunique()),
            "readers": int(f["reader"].nunique()),
            "labels": {str(k): int(v) for k, v in labelled.items()},
            "notes": list(self.notes),
            "problems": [p.to_json() for p in self.problems],
            **self.details(),
        }

    def write(self, out: str | Path) -> Path:
        """Validate and write the two tables and the report to ``out``: all of them or none."""
        report = (json.dumps(self.report(), indent=2) + "\n").encode("utf-8")
        return save_tables(out, self.images, self.findings, extra={self.report_file: report})
