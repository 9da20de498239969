"""The official metrics: AUROC with CIs, mAP at IoU 0.4, T(IoBB), and submission checks."""
