"""The official metrics: AUROC with CIs, mAP at IoU 0.4, T(IoBB), and submission checks.

``classification``: per-label AUROC / AUPRC / sensitivity / specificity with patient-level bootstrap CIs.
``detection``: VOC average precision (the VinBigData challenge's mAP@0.4), COCO AP@[.5:.95], T(IoU)/T(IoBB).
``submission``: the challenge's CSV, read with a message per problem, and written from a findings table.
``scoring``: truth and predictions from the tables to a :class:`~cxrlab.metrics.scoring.MetricScore`.
"""

from cxrlab.metrics.classification import (
    ClassificationResult,
    UndefinedMetricWarning,
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
from cxrlab.metrics.scoring import MetricScore, Predictions, Truth, load_predictions, score, select_truth
from cxrlab.metrics.submission import (
    SubmissionError,
    check_submission_file,
    make_submission,
    make_submission_file,
    read_prediction_table,
    read_submission,
    write_submission,
)

__all__ = [
    "APResult",
    "ClassificationResult",
    "MetricScore",
    "Predictions",
    "SubmissionError",
    "Truth",
    "UndefinedMetricWarning",
    "auprc",
    "auroc",
    "average_precision",
    "average_precision_at",
    "check_submission_file",
    "classification_metrics",
    "coco_average_precision",
    "load_predictions",
    "localization_accuracy",
    "make_submission",
    "make_submission_file",
    "read_prediction_table",
    "read_submission",
    "score",
    "select_truth",
    "sensitivity_specificity",
    "write_submission",
]
