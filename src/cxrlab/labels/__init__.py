"""Multi-reader labels: consensus, agreement and exports.

``consensus``: majority vote of image labels and fusion of the readers' boxes (WBF, NMS, majority box).
``agreement``: Fleiss' and Cohen's kappa on presence, pairwise box F1 and IoU.
``export``: COCO, YOLO, VOC and the VinDr-CXR releases' CSVs, written whole into a folder.
"""

from cxrlab.labels.agreement import Agreement, agreement, cohen_kappa, fleiss_kappa, match_boxes
from cxrlab.labels.consensus import METHODS, ConsensusResult, consensus
from cxrlab.labels.export import FORMATS, ExportResult, class_list, export, read_manifest

__all__ = [
    "FORMATS",
    "METHODS",
    "Agreement",
    "ConsensusResult",
    "ExportResult",
    "agreement",
    "class_list",
    "cohen_kappa",
    "consensus",
    "export",
    "fleiss_kappa",
    "match_boxes",
    "read_manifest",
]
