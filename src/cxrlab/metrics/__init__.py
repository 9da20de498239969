"""The official metrics: AUROC with CIs, mAP at IoU 0.4, T(IoBB), and submission checks.

``classification``: per-label AUROC / AUPRC / sensitivity / specificity with patient-level bootstrap CIs.
``detection``: VOC average precision (the VinBigData challenge's mAP@0.4), COCO AP@[.5:.95], T(IoU)/T(IoBB).
``submission``: the challenge's CSV, read with a message per problem, and written from a findings table.
``scoring``: truth and predictions from the tables to a :class:`~cxrlab.metrics.scoring.Score`.
"""

from cxrlab.metrics.classification import (
    ClassificationResult,
    auprc,
    auroc,
    classification_metrics,
    sensitivity_specificity,
)
from cxrlab.metrics.detection import (
    APResult,
    average_precision,
    average_precision_at,
    coco_average_precision,
    localization_accuracy,
)
from cxrlab.metrics.scoring import Score, score
from cxrlab.metrics.submission import SubmissionError, make_submission, read_submission, write_submission

__all__ = [
    "APResult",
    "ClassificationResult",
    "Score",
    "SubmissionError",
    "auprc",
    "auroc",
    "average_precision",
    "average_precision_at",
    "classification_metrics",
    "coco_average_precision",
    "localization_accuracy",
    "make_submission",
    "read_submission",
    "score",
    "sensitivity_specificity",
    "write_submission",
]
