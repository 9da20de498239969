"""Consensus of readers: the documented hand-built cases, a slow reference, and the phantom's known truth."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlab.boxes import box_iou
from cxrlab.cli.main import app
from cxrlab.labels.consensus import consensus
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, load_tables, save_tables

NF = "No finding"


def images_table(ids: list[str], size: float | None = 1000, split: str = "train") -> pd.DataFrame:
    return conform_images(
        pd.DataFrame(
            {
                "image_id": ids,
                "dataset": "vindr",
                "split": split,
                "patient_id": None,
                "path": ids,
                "width": size,
                "height": size,
                "sex": None,
                "age": None,
                "view": "PA",
            }
        )
    )


def findings_table(rows: list[tuple]) -> pd.DataFrame:
    """rows: (image_id, reader, label) or (image_id, reader, label, x0, y0, x1, y1)."""
    full = [(*r, *([np.nan] * 4 if len(r) == 3 else []), 1.0) for r in rows]
    return conform_findings(
        pd.DataFrame(full, columns=["image_id", "reader", "label", *BOX_COLUMNS, "score"])
    )


def cons_rows(result, image_id: str = "i") -> pd.DataFrame:
    f = result.findings
    return f[(f["reader"] == "consensus") & (f["image_id"] == image_id)].reset_index(drop=True)


def run(rows: list[tuple], **kw) -> pd.DataFrame:
    ids = sorted({r[0] for r in rows})
    return cons_rows(consensus(images_table(ids), findings_table(rows), **kw), ids[0])


# ------------------------------------------------------------------------------- the hand-built cases
@pytest.mark.parametrize("method", ["wbf", "nms", "majority-box"])
def test_three_readers_agree(method: str) -> None:
    c = run(
        [
            ("i", "R1", "Nodule/Mass", 100, 100, 200, 200),
            ("i", "R2", "Nodule/Mass", 102, 98, 198, 202),
            ("i", "R3", "Nodule/Mass", 98, 102, 202, 198),
        ],
        method=method,
    )
    assert c["label"].tolist() == ["Nodule/Mass"]
    assert c["n_readers"].tolist() == [3] and c["score"].tolist() == [1.0]
    if method != "nms":  # WBF's mean and the median both give the middle box
        assert c[BOX_COLUMNS].iloc[0].tolist() == pytest.approx([100, 100, 200, 200], abs=1e-3)


@pytest.mark.parametrize("method", ["wbf", "majority-box"])
def test_two_of_three(method: str) -> None:
    c = run(
        [
            ("i", "R1", "Cardiomegaly", 300, 500, 700, 800),
            ("i", "R2", "Cardiomegaly", 310, 510, 690, 790),
            ("i", "R3", NF),
        ],
        method=method,
    )
    assert c["label"].tolist() == ["Cardiomegaly"]  # a reader's No finding is outvoted
    assert c["n_readers"].tolist() == [2] and c["score"].iloc[0] == pytest.approx(2 / 3)
    assert c[BOX_COLUMNS].iloc[0].tolist() == pytest.approx([305, 505, 695, 795], abs=1e-3)


@pytest.mark.parametrize("method", ["wbf", "nms", "majority-box"])
def test_one_reader_alone_gives_no_finding(method: str) -> None:
    c = run([("i", "R1", "Nodule/Mass", 10, 10, 50, 50), ("i", "R2", NF), ("i", "R3", NF)], method=method)
    assert c["label"].tolist() == [NF] and c[BOX_COLUMNS].isna().all().all()
    assert c["n_readers"].tolist() == [2]


def test_one_reader_alone_kept_with_keep_minority() -> None:
    c = run(
        [("i", "R1", "Nodule/Mass", 10, 10, 50, 50), ("i", "R2", NF), ("i", "R3", NF)], keep_minority=True
    )
    assert c["label"].tolist() == ["Nodule/Mass"] and c["n_readers"].tolist() == [1]


SPLIT = [
    ("i", "R1", "Pleural effusion", 100, 100, 200, 200),
    ("i", "R2", "Pleural effusion", 100, 100, 200, 170),  # R2 split the finding: 70% (IoU 0.7 with R1) ...
    ("i", "R2", "Pleural effusion", 100, 170, 200, 200),  # ... and 30% (IoU 0.3 with R1)
    ("i", "R3", "Pleural effusion", 100, 100, 200, 200),
]


def test_split_boxes_wbf() -> None:
    """WBF: the 70% part joins R1's and R3's cluster (mean box), the 30% part stands alone and is dropped."""
    c = run(SPLIT, method="wbf")
    assert c["label"].tolist() == ["Pleural effusion"] and c["n_readers"].tolist() == [3]
    assert c[BOX_COLUMNS].iloc[0].tolist() == pytest.approx([100, 100, 200, 190], abs=1e-3)


def test_split_boxes_majority_box() -> None:
    """majority-box: per reader the enclosing box of its linked boxes, then the median: the majority's box."""
    c = run(SPLIT, method="majority-box")
    assert c["n_readers"].tolist() == [3]
    assert c[BOX_COLUMNS].iloc[0].tolist() == pytest.approx([100, 100, 200, 200])


def test_split_boxes_linked_by_majority_box_at_lower_iou() -> None:
    """At IoU 0.25 the 30% part links too: R2's enclosing box is then the whole region."""
    c = run(
        [
            *SPLIT[:1],
            ("i", "R2", "Pleural effusion", 100, 100, 200, 150),
            ("i", "R2", "Pleural effusion", 100, 150, 200, 200),
        ],
        method="majority-box",
        iou=0.25,
    )
    assert c["n_readers"].tolist() == [2]
    assert c[BOX_COLUMNS].iloc[0].tolist() == pytest.approx([100, 100, 200, 200])


def test_no_finding_reader_while_two_draw_boxes() -> None:
    c = run(
        [
            ("i", "R1", NF),
            ("i", "R2", "Aortic enlargement", 400, 200, 500, 300),
            ("i", "R3", "Aortic enlargement", 405, 195, 505, 305),
        ]
    )
    assert c["label"].tolist() == ["Aortic enlargement"]
    assert NF not in set(c["label"])
    assert c["n_readers"].tolist() == [2]


def test_label_agreed_but_boxes_apart_stays_image_level() -> None:
    c = run(
        [
            ("i", "R1", "Nodule/Mass", 10, 10, 50, 50),
            ("i", "R2", "Nodule/Mass", 600, 600, 650, 650),
            ("i", "R3", NF),
        ]
    )
    assert c["label"].tolist() == ["Nodule/Mass"] and c[BOX_COLUMNS].isna().all().all()
    assert c["n_readers"].tolist() == [2]


def test_global_labels_by_vote_and_quorum_option() -> None:
    rows = [("i", "R1", "COPD"), ("i", "R2", "COPD"), ("i", "R3", "Tuberculosis"), ("i", "R3", "COPD")]
    assert run(rows)["label"].tolist() == ["COPD"]
    assert run(rows, min_readers=3)["label"].tolist() == ["COPD"]
    assert set(run(rows, min_readers=1)["label"]) == {"COPD", "Tuberculosis"}
    assert run(rows[:1] + rows[2:3], min_readers=2)["label"].tolist() == [NF]


def test_test_split_consensus_is_kept_and_rerun_replaces_old_consensus() -> None:
    imgs = pd.concat([images_table(["i"]), images_table(["t"], split="test")], ignore_index=True)
    f = findings_table(
        [("i", "R1", "COPD"), ("i", "R2", "COPD"), ("i", "R3", NF), ("t", "consensus", "Edema")]
    )
    first = consensus(imgs, f)
    assert cons_rows(first, "t")["label"].tolist() == ["Edema"]
    again = consensus(imgs, first.findings, min_readers=3)
    assert cons_rows(again, "i")["label"].tolist() == [NF]
    assert cons_rows(again, "t")["label"].tolist() == ["Edema"]
    assert (again.findings["reader"] == "consensus").sum() == 2


def test_unknown_sizes_give_the_same_boxes() -> None:
    rng = np.random.default_rng(3)
    imgs, f = random_readers(rng, 30)
    known = consensus(imgs, f).findings
    unknown = consensus(imgs.assign(width=pd.NA, height=pd.NA), f).findings
    pd.testing.assert_frame_equal(known, unknown, atol=1e-2)


def test_bad_options_are_usage_errors() -> None:
    from cxrlab.errors import ParameterError, UsageError

    imgs, f = images_table(["i"]), findings_table([("i", "R1", NF)])
    with pytest.raises(UsageError, match="method must be one of wbf, nms, majority-box"):
        consensus(imgs, f, method="soft-nms")
    for bad in (1.5, 2, -1, 0, 1, float("nan"), float("inf")):
        with pytest.raises(ParameterError, match=r"^iou ") as caught:  # the parameter, not the flag
            consensus(imgs, f, iou=bad)
        assert caught.value.parameter == "iou" and isinstance(caught.value, UsageError)
    with pytest.raises(ParameterError, match=r"^min_readers "):
        consensus(imgs, f, min_readers=0)


# -------------------------------------------------------------------------------- slow reference
def random_readers(rng: np.random.Generator, n_images: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    labels = ["Nodule/Mass", "Cardiomegaly", "Pleural effusion"]
    rows: list[tuple] = []
    ids = [f"img{i:03d}" for i in range(n_images)]
    for image_id in ids:
        readers = rng.choice([f"R{k}" for k in range(1, 9)], size=3, replace=False)
        lesions = [
            (labels[rng.integers(3)], *rng.uniform(0, 800, 2), *rng.uniform(30, 200, 2))
            for _ in range(rng.integers(0, 4))
        ]
        for r in readers:
            drew = False
            for lab, x, y, w, h in lesions:
                if rng.random() < 0.25:
                    continue
                j = rng.normal(0, 0.15, 4) * [w, h, w, h]
                box = np.clip([x + j[0], y + j[1], x + w + abs(j[2]), y + h + abs(j[3])], 0, 1000)
                rows.append((image_id, r, lab, *box))
                drew = True
            if rng.random() < 0.2:
                rows.append((image_id, r, "COPD"))
                drew = True
            if not drew:
                rows.append((image_id, r, NF))
    return images_table(ids), findings_table(rows)


def reference_consensus(images: pd.DataFrame, findings: pd.DataFrame, method: str, iou: float, quorum: int):
    """The obvious version: a pandas group-by per image and label, plain loops for the support."""
    from ensemble_boxes import nms, weighted_boxes_fusion

    out = []
    size = images.set_index("image_id")
    for image_id, g in findings.groupby("image_id"):
        readers = sorted(g["reader"].unique())
        w, h = float(size.loc[image_id, "width"]), float(size.loc[image_id, "height"])
        positive = [lab for lab, gg in g.groupby("label") if lab != NF and gg["reader"].nunique() >= quorum]
        boxed = g.dropna(subset=["x_min"])
        labels = sorted(boxed["label"].unique())
        rows = []
        for lab_code, lab in enumerate(labels):
            b = boxed[boxed["label"] == lab]
            per_reader = [b[b["reader"] == r] for r in readers]
            bl = [p[BOX_COLUMNS].to_numpy(float) / [w, h, w, h] for p in per_reader]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if method == "wbf":
                    fused, _, _ = weighted_boxes_fusion(
                        bl,
                        [np.ones(len(x)) for x in bl],
                        [np.full(len(x), lab_code) for x in bl],
                        iou_thr=iou,
                    )
                else:
                    fused, _, _ = nms(
                        bl,
                        [np.ones(len(x)) for x in bl],
                        [np.full(len(x), lab_code) for x in bl],
                        iou_thr=iou,
                    )
            support: list[set[str]] = [set() for _ in fused]
            for r, boxes in zip(readers, bl, strict=True):
                for box in boxes:
                    ious = [float(box_iou(box[None], np.asarray(fb)[None])[0, 0]) for fb in fused]
                    best = int(np.argmax(ious))
                    if ious[best] > 0:
                        support[best].add(r)
            for fb, s in zip(fused, support, strict=True):
                if len(s) >= quorum:
                    rows.append((image_id, lab, *np.round(np.asarray(fb) * [w, h, w, h], 3), len(s)))
        have = {r[1] for r in rows}
        rows += [
            (image_id, lab, *[np.nan] * 4, g[g["label"] == lab]["reader"].nunique())
            for lab in positive
            if lab not in have
        ]
        if not rows:
            rows.append((image_id, NF, *[np.nan] * 4, g[g["label"] == NF]["reader"].nunique()))
        out += rows
    df = pd.DataFrame(out, columns=["image_id", "label", *BOX_COLUMNS, "n_readers"])
    return df.sort_values(["image_id", "label", *BOX_COLUMNS], na_position="last").reset_index(drop=True)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou", [0.3, 0.5])
@pytest.mark.parametrize("method", ["wbf", "nms"])
def test_matches_slow_reference(seed: int, iou: float, method: str) -> None:
    rng = np.random.default_rng(seed)
    imgs, f = random_readers(rng, 25)
    fast = consensus(imgs, f, method=method, iou=iou).findings
    fast = fast[fast["reader"] == "consensus"][["image_id", "label", *BOX_COLUMNS, "n_readers"]]
    fast = fast.sort_values(["image_id", "label", *BOX_COLUMNS], na_position="last").reset_index(drop=True)
    ref = reference_consensus(imgs, f, method, iou, 2)
    assert len(fast) == len(ref)
    assert fast["image_id"].tolist() == ref["image_id"].tolist()
    assert fast["label"].tolist() == ref["label"].tolist()
    np.testing.assert_allclose(fast[BOX_COLUMNS].to_numpy(float), ref[BOX_COLUMNS].to_numpy(float), atol=1e-3)
    assert fast["n_readers"].astype(int).tolist() == ref["n_readers"].astype(int).tolist()


# --------------------------------------------------------------------------- phantom with known truth
def _best_iou(boxes: pd.DataFrame, truth: pd.DataFrame) -> np.ndarray:
    """For each true box, the best IoU with a same-label box of ``boxes`` on its image (0 when none)."""
    out = np.zeros(len(truth))
    groups = {k: g[BOX_COLUMNS].to_numpy(float) for k, g in boxes.groupby(["image_id", "label"])}
    for i, r in enumerate(truth.itertuples()):
        b = groups.get((r.image_id, r.label))
        if b is not None:
            out[i] = box_iou(np.array([[r.x_min, r.y_min, r.x_max, r.y_max]]), b).max()
    return out


@pytest.fixture(scope="module")
def phantom_tables(tmp_path_factory: pytest.TempPathFactory):
    from cxrlab.datasets.phantom.vindr import make_vindr
    from cxrlab.datasets.vindr import index_vindr

    root = tmp_path_factory.mktemp("vindr") / "phantom"
    make_vindr(root, images=150, seed=0, size=128)
    idx = index_vindr(root)
    truth = pd.read_csv(root / "phantom_truth.csv", dtype={"image_id": str}).dropna(subset=["x_min"])
    train = set(idx.images.loc[idx.images["split"] == "train", "image_id"])
    return idx, truth[truth["image_id"].isin(train)].reset_index(drop=True)


@pytest.mark.parametrize("method", ["wbf", "majority-box"])
def test_consensus_closer_to_truth_than_single_readers(phantom_tables, method: str) -> None:
    idx, truth = phantom_tables
    assert len(truth) > 100
    result = consensus(idx.images, idx.findings, method=method)
    f = result.findings
    boxes = f[f[BOX_COLUMNS].notna().all(axis=1)]
    cons = _best_iou(boxes[boxes["reader"] == "consensus"], truth)
    human = boxes[boxes["reader"] != "consensus"]
    # Each image's readers in sorted order fill three "reader slots" that cover every image.
    slot_of = {
        (i, r): k for i, g in human.groupby("image_id") for k, r in enumerate(sorted(g["reader"].unique()))
    }
    all_readers = idx.findings[idx.findings["reader"] != "consensus"]
    readers_of = all_readers.groupby("image_id")["reader"].unique().map(sorted)
    for slot in range(3):
        chosen = {(i, rs[slot]) for i, rs in readers_of.items() if len(rs) > slot}
        mask = [(i, r) in chosen for i, r in zip(human["image_id"], human["reader"], strict=True)]
        single = _best_iou(human[mask], truth)
        assert cons.mean() > single.mean(), (slot, cons.mean(), single.mean())
    # Every reader with enough boxes in the sample, on the images that reader read.
    for reader, g in all_readers.groupby("reader"):
        on = truth["image_id"].isin(set(g["image_id"])).to_numpy()
        if on.sum() < 30:
            continue
        single = _best_iou(human[human["reader"] == reader], truth[on])
        assert cons[on].mean() > single.mean(), (reader, cons[on].mean(), single.mean())
    assert slot_of  # the phantom has human boxes


def test_cli_consensus(tmp_path: Path) -> None:
    imgs = images_table(["i"])
    f = findings_table([("i", "R1", "COPD"), ("i", "R2", "COPD"), ("i", "R3", NF)])
    save_tables(tmp_path / "t", imgs, f)
    res = CliRunner().invoke(
        app,
        [
            "labels",
            "consensus",
            str(tmp_path / "t"),
            "--out",
            str(tmp_path / "c"),
            "--method",
            "majority-box",
            "--min-readers",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "majority-box" in res.output
    out = load_tables(tmp_path / "c").findings
    assert out[out["reader"] == "consensus"]["label"].tolist() == ["COPD"]
    assert "n_readers" in out.columns
    res = CliRunner().invoke(
        app, ["labels", "consensus", str(tmp_path / "t"), "--out", str(tmp_path / "d"), "--method", "median"]
    )
    from cxrlab.errors import UsageError  # main() turns it into exit code 2

    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
