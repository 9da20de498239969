"""Tables, plots and figures a person would rather see than read.

``statistics``: label counts per split, sex, age band, co-occurrence (tables and JSON).
``colors``: one colour per label and one line style per reader, the same in every figure.
``source``: image files by id (a dataset root or a conversion output) through the display pipeline.
``figures``: annotated radiographs (``cxrlab show``). ``plots``: statistics plots. ``model``: a model's
ROC curves with bootstrap bands, AP and best/worst cases. ``report``: the self-contained HTML page
(``cxrlab report``). Names are imported on first use, so ``cxrlab stats`` does not load matplotlib.
"""

from __future__ import annotations

from cxrlab.lazy import lazy_exports

_EXPORTS = {
    "LabelStats": "statistics",
    "label_statistics": "statistics",
    "label_color": "colors",
    "label_colors": "colors",
    "reader_styles": "colors",
    "ImageSource": "source",
    "load_display": "source",
    "show_figure": "figures",
    "figure_of": "figures",
    "panel_for": "figures",
    "model_results": "model",
    "roc_band": "model",
    "build_report": "report",
    "ReportSummary": "report",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
