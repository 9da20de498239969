"""Labels from free-text radiology reports: sections, mentions, negation, uncertainty.

>>> from cxrlab.reports import ReportLabeler
>>> ReportLabeler("nih").label("No pneumothorax. Small left pleural effusion.")
{'Effusion': 1, 'Pneumothorax': 0}

The phrase lists (``phrases/nih.txt``, ``chexpert.txt``, ``vindr.txt``) and the triggers
(``phrases/rules.txt``) are data files; copy one and pass its path to extend it.
"""

from cxrlab.reports.evaluate import (
    Evaluation,
    LabelScore,
    evaluate_openi,
    in_holdout,
    load_openi,
    score_labels,
)
from cxrlab.reports.labeler import (
    DIFFERENTIAL_POLICIES,
    EXPLANATION,
    UNCERTAIN_POLICIES,
    Mention,
    ReportLabeler,
    apply_policy,
    label_reports,
)
from cxrlab.reports.mentions import LABEL_SET_NAMES, MentionFinder
from cxrlab.reports.negation import NEGATIVE, POSITIVE, UNCERTAIN, Rules, TriggerIndex, classify
from cxrlab.reports.patterns import PhraseFileError
from cxrlab.reports.reading import decode_bytes, read_reports, read_text_file
from cxrlab.reports.sections import split_sections, split_sentences

__all__ = [
    "DIFFERENTIAL_POLICIES",
    "EXPLANATION",
    "LABEL_SET_NAMES",
    "NEGATIVE",
    "POSITIVE",
    "UNCERTAIN",
    "UNCERTAIN_POLICIES",
    "Evaluation",
    "LabelScore",
    "Mention",
    "MentionFinder",
    "PhraseFileError",
    "ReportLabeler",
    "Rules",
    "TriggerIndex",
    "apply_policy",
    "classify",
    "decode_bytes",
    "evaluate_openi",
    "in_holdout",
    "label_reports",
    "load_openi",
    "read_reports",
    "read_text_file",
    "score_labels",
    "split_sections",
    "split_sentences",
]
