# ruff: noqa: E501  (BibTeX lines are quoted as published)
"""The citations the datasets' providers ask for (VinDr-CXR's DUA term 9, NIH FAQ Q04)."""

VINDR_CXR_BIBTEX = r"""@misc{nguyen2020vindrcxr,
      title={VinDr-CXR: An open dataset of chest X-rays with radiologist's annotations},
      author={Ha Q. Nguyen and Khanh Lam and Linh T. Le and Hieu H. Pham and Dat Q. Tran and Dung B. Nguyen and Dung D. Le and Chi M. Pham and Hang T. T. Tong and Diep H. Dinh and Cuong D. Do and Luu T. Doan and Cuong N. Nguyen and Binh T. Nguyen and Que V. Nguyen and Au D. Hoang and Hien N. Phan and Anh T. Nguyen and Phuong H. Ho and Dat T. Ngo and Nghia T. Nguyen and Nhan T. Nguyen and Minh Dao and Van Vu},
      year={2020},
      eprint={2012.15029},
      archivePrefix={arXiv},
      primaryClass={eess.IV}
}"""

CHESTXRAY8_BIBTEX = r"""@inproceedings{wang2017chestxray8,
      title={ChestX-ray8: Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised Classification and Localization of Common Thorax Diseases},
      author={Xiaosong Wang and Yifan Peng and Le Lu and Zhiyong Lu and Mohammadhadi Bagheri and Ronald M. Summers},
      booktitle={Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
      pages={2097--2106},
      year={2017}
}"""

NIH_ACKNOWLEDGEMENT = (
    "NIH ChestX-ray14: usage is unrestricted; link to the NIH download site, acknowledge the "
    "NIH Clinical Center and cite the CVPR 2017 paper (ChestX-ray8)."
)
VINDR_NOTE = (
    "VinDr-CXR: non-commercial research use under its data-use agreement; no redistribution of any part; "
    "cite the paper below in all publications."
)


def citations() -> str:
    return "\n\n".join([f"% {VINDR_NOTE}", VINDR_CXR_BIBTEX, f"% {NIH_ACKNOWLEDGEMENT}", CHESTXRAY8_BIBTEX])
