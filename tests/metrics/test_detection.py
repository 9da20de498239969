"""mAP against map-boxes and a plain reference loop, COCO AP against pycocotools, T(IoU)/T(IoBB) by hand."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pandas as pd
import pytest

from cxrlab.boxes import box_iou as matrix_iou
from cxrlab.boxes import paired_iobb, paired_iou
from cxrlab.metrics.detection import (
    average_precision,
    average_precision_at,
    coco_average_precision,
    localization_accuracy,
)

BOX = ["x_min", "y_min", "x_max", "y_max"]

with contextlib.redirect_stdout(io.StringIO()):  # map-boxes prints about its missing Cython build
    from map_boxes import mean_average_precision_for_boxes


def random_case(
    rng: np.random.Generator, *, n_images: int = 25, n_classes: int = 6, sorted_per_image: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth and predictions meeting map-boxes' conditions: every predicted image is in the truth,
    confidences distinct (and exact in float32), integer boxes, each image's predictions by descending score.

    Some classes get no truth (empty classes), some truth images get no prediction, some predictions hit
    classes absent from the image, many predictions are jittered truth boxes (so IoUs fall on both sides of
    the thresholds), and some are duplicates of one truth box (several predictions per box).
    """
    truth_rows = []
    present_classes = rng.choice(n_classes, size=rng.integers(1, n_classes + 1), replace=False)
    for i in range(n_images):
        for _ in range(rng.integers(0, 5)):
            c = int(rng.choice(present_classes))
            x, y = rng.integers(0, 200, 2)
            w, h = rng.integers(1, 60, 2)
            truth_rows.append((f"img{i:03d}", c, x, y, x + w, y + h))
    truth = pd.DataFrame(truth_rows, columns=["image_id", "label", *BOX])
    pred_rows = []
    for image_id, boxes in truth.groupby("image_id"):
        if rng.random() < 0.15:
            continue  # a truth image without predictions
        for _ in range(rng.integers(0, 8)):
            if rng.random() < 0.65:
                r = boxes.iloc[rng.integers(len(boxes))]
                j = rng.integers(-8, 9, 4)
                x0, y0 = r.x_min + j[0], r.y_min + j[1]
                box = (x0, y0, max(x0 + 1, r.x_max + j[2]), max(y0 + 1, r.y_max + j[3]))
                c = int(r.label) if rng.random() < 0.85 else int(rng.integers(n_classes))
            else:
                x, y = rng.integers(0, 200, 2)
                w, h = rng.integers(1, 60, 2)
                box, c = (x, y, x + w, y + h), int(rng.integers(n_classes))
            pred_rows.append((image_id, c, *box))
    pred = pd.DataFrame(pred_rows, columns=["image_id", "label", *BOX])
    # Distinct confidences, exactly representable in float32 (map-boxes casts to float32).
    pred["score"] = (rng.permutation(len(pred)) + 1) / 2.0**14
    if sorted_per_image:
        pred = pred.sort_values(["image_id", "score"], ascending=[True, False], kind="stable")
    else:
        pred = pred.sample(frac=1.0, random_state=int(rng.integers(1 << 30)))
    return truth.reset_index(drop=True), pred.reset_index(drop=True)


def map_boxes(truth: pd.DataFrame, pred: pd.DataFrame, iou: float) -> tuple[float, dict[str, float]]:
    # map-boxes' column order is ImageID, LabelName, (Conf,) XMin, XMax, YMin, YMax.
    ann = truth[["image_id", "label", "x_min", "x_max", "y_min", "y_max"]].to_numpy()
    det = pred[["image_id", "label", "score", "x_min", "x_max", "y_min", "y_max"]].to_numpy()
    mean, per_class = mean_average_precision_for_boxes(ann, det, iou_threshold=iou, verbose=False)
    return float(mean), {k: float(v[0]) for k, v in per_class.items()}


def reference_voc(
    truth: pd.DataFrame, pred: pd.DataFrame, iou: float, inclusive: bool
) -> dict[object, float]:
    """The VOC devkit's loop, written plainly: one class at a time, predictions by descending score."""
    out = {}
    for c in sorted(set(truth["label"]) | set(pred["label"])):
        t = truth[truth["label"] == c]
        p = pred[pred["label"] == c].sort_values("score", ascending=False, kind="stable")
        if len(t) == 0:
            out[c] = float("nan")
            continue
        taken = {k: np.zeros(n, dtype=bool) for k, n in t.groupby("image_id").size().items()}
        gts = {k: g[BOX].to_numpy(float) for k, g in t.groupby("image_id")}
        tp = []
        for r in p.itertuples():
            if r.image_id not in gts:
                tp.append(False)
                continue
            ov = matrix_iou(np.array([[r.x_min, r.y_min, r.x_max, r.y_max]], float), gts[r.image_id])[0]
            j = int(np.argmax(ov))
            passed = ov[j] >= iou if inclusive else ov[j] > iou
            if passed and not taken[r.image_id][j]:
                taken[r.image_id][j] = True
                tp.append(True)
            else:
                tp.append(False)
        tp_arr = np.array(tp, dtype=float)
        tps, fps = np.cumsum(tp_arr), np.cumsum(1 - tp_arr)
        rec = tps / len(t)
        prec = tps / np.maximum(tps + fps, 1e-12)
        mrec = np.concatenate(([0], rec, [1]))
        mpre = np.concatenate(([0], prec, [0]))
        for i in range(len(mpre) - 2, -1, -1):
            mpre[i] = max(mpre[i], mpre[i + 1])
        idx = np.where(mrec[1:] != mrec[:-1])[0]
        out[c] = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))
    return out


@pytest.mark.parametrize("iou", [0.4, 0.5, 0.75])
def test_map_equals_map_boxes_on_hundreds_of_random_cases(iou: float) -> None:
    rng = np.random.default_rng(int(iou * 100))
    compared = 0
    for _ in range(120):
        truth, pred = random_case(rng)
        if truth.empty:
            continue
        expected, per_class = map_boxes(truth, pred, iou)
        result = average_precision(truth, pred, iou_threshold=iou, inclusive=True)
        assert result.mean == pytest.approx(expected, abs=1e-9)
        for row in result.table.itertuples():
            if row.n_truth:
                assert row.ap == pytest.approx(per_class[str(row.label)], abs=1e-9)
            else:
                assert np.isnan(row.ap) and str(row.label) not in per_class
        # VOC's strict ">" agrees too wherever no IoU lands exactly on the threshold.
        ious = _all_same_class_ious(truth, pred)
        if not np.any(ious == iou):
            assert average_precision(truth, pred, iou_threshold=iou).mean == pytest.approx(expected, abs=1e-9)
        compared += 1
    assert compared > 100


def _all_same_class_ious(truth: pd.DataFrame, pred: pd.DataFrame) -> np.ndarray:
    merged = pred.merge(truth, on=["image_id", "label"], suffixes=("_p", "_t"))
    a = merged[[f"{c}_p" for c in BOX]].to_numpy(float)
    b = merged[[f"{c}_t" for c in BOX]].to_numpy(float)
    return paired_iou(a, b)


def test_map_equals_a_plain_voc_loop_even_when_predictions_are_listed_in_any_order() -> None:
    rng = np.random.default_rng(7)
    differs = 0
    for _ in range(60):
        truth, pred = random_case(rng, sorted_per_image=False)
        if truth.empty:
            continue
        # Add predictions on images absent from the truth: false positives for VOC.
        extra = pred.head(3).assign(image_id="not-in-truth", score=lambda d: d["score"] + 0.5)
        pred = pd.concat([pred, extra], ignore_index=True)
        for inclusive in (False, True):
            expected = reference_voc(truth, pred, 0.4, inclusive)
            table = average_precision(truth, pred, iou_threshold=0.4, inclusive=inclusive).table
            got = dict(zip(table["label"], table["ap"], strict=True))
            assert set(got) == set(expected)
            for c, value in expected.items():
                assert got[c] == pytest.approx(value, abs=1e-12, nan_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            mb, _ = map_boxes(truth, pred, 0.4)
        differs += abs(mb - average_precision(truth, pred, iou_threshold=0.4, inclusive=True).mean) > 1e-9
    assert differs > 0, "map-boxes' listed-order matching and ignored images should differ from VOC somewhere"


def test_threshold_is_strict_by_default_and_inclusive_on_request() -> None:
    # IoU of these two boxes is exactly 0.5: 10x10 truth, 10x5 prediction inside it.
    truth = pd.DataFrame({"image_id": ["a"], "label": [0], "x_min": [0.0], "y_min": [0.0],
                          "x_max": [10.0], "y_max": [10.0]})  # fmt: skip
    pred = truth.assign(y_max=5.0, score=0.9)
    assert paired_iou(pred[BOX].to_numpy(float), truth[BOX].to_numpy(float))[0] == 0.5
    assert average_precision(truth, pred, iou_threshold=0.5).mean == 0.0
    assert average_precision(truth, pred, iou_threshold=0.5, inclusive=True).mean == 1.0
    mb, _ = map_boxes(truth, pred, 0.5)
    assert mb == 1.0  # map-boxes uses ">="


def test_hand_computed_voc_ap_and_the_voc_rule_for_a_taken_box() -> None:
    # Two truth boxes on one image; predictions by score: hit A, hit A again (FP: A taken, even though it
    # also overlaps B a little), miss, hit B. Precision at the hits: 1/1 and 2/4 -> AP = (1 + 0.5) / 2.
    truth = pd.DataFrame({"image_id": ["i", "i"], "label": ["x", "x"], "x_min": [0.0, 20.0],
                          "y_min": [0.0, 0.0], "x_max": [10.0, 30.0], "y_max": [10.0, 10.0]})  # fmt: skip
    pred = pd.DataFrame({"image_id": ["i"] * 4, "label": ["x"] * 4, "score": [0.9, 0.8, 0.7, 0.6],
                         "x_min": [0.0, 1.0, 50.0, 20.0], "y_min": [0.0] * 4,
                         "x_max": [10.0, 11.0, 60.0, 30.0], "y_max": [10.0] * 4})  # fmt: skip
    result = average_precision(truth, pred, iou_threshold=0.4)
    assert result.table["ap"].iloc[0] == pytest.approx(0.75)
    assert result.table["tp"].iloc[0] == 2


def test_empty_class_is_undefined_and_no_prediction_gives_zero() -> None:
    truth = pd.DataFrame({"image_id": ["i"], "label": [1], "x_min": [0.0], "y_min": [0.0],
                          "x_max": [10.0], "y_max": [10.0]})  # fmt: skip
    pred = truth.assign(label=2, score=0.5)
    table = average_precision(truth, pred, classes=[0, 1, 2]).table.set_index("label")
    assert np.isnan(table.loc[0, "ap"]) and np.isnan(table.loc[2, "ap"])
    assert table.loc[1, "ap"] == 0.0
    assert average_precision(truth, pred, classes=[0, 1, 2]).mean == 0.0


def test_score_ties_keep_table_order() -> None:
    truth = pd.DataFrame({"image_id": ["a", "b"], "label": [0, 0], "x_min": [0.0, 0.0], "y_min": [0.0, 0.0],
                          "x_max": [10.0, 10.0], "y_max": [10.0, 10.0]})  # fmt: skip
    hit = truth.iloc[[0]].assign(score=0.5)
    miss = truth.iloc[[1]].assign(x_min=50.0, x_max=60.0, score=0.5)
    # hit listed first: precision 1 at recall 0.5 -> AP 0.5; miss first: precision 0.5 -> AP 0.25.
    assert average_precision(truth, pd.concat([hit, miss])).mean == pytest.approx(0.5)
    assert average_precision(truth, pd.concat([miss, hit])).mean == pytest.approx(0.25)


def test_several_thresholds_share_the_work_and_agree_with_single_calls() -> None:
    truth, pred = random_case(np.random.default_rng(3), n_images=40)
    many = average_precision_at(truth, pred, iou_thresholds=[0.3, 0.5, 0.7])
    for result, thr in zip(many, [0.3, 0.5, 0.7], strict=True):
        assert result.mean == pytest.approx(average_precision(truth, pred, iou_threshold=thr).mean, abs=1e-15)
    assert many[0].mean >= many[2].mean


def _pycocotools(
    truth: pd.DataFrame, pred: pd.DataFrame, *, swap_bug: bool = False
) -> tuple[float, np.ndarray]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images = sorted(set(truth["image_id"]) | set(pred["image_id"]))
    ids = {name: k + 1 for k, name in enumerate(images)}
    cats = sorted(set(truth["label"]))

    def bbox(r: object) -> list[float]:
        x0, y0, x1, y1 = (float(getattr(r, c)) for c in BOX)
        # The notebook bug: x_min, y_min, x_max, y_max handed over as COCO's x, y, w, h.
        return [x0, y0, x1, y1] if swap_bug else [x0, y0, x1 - x0, y1 - y0]

    gt = COCO()
    gt.dataset = {
        "images": [{"id": i} for i in ids.values()],
        "categories": [{"id": int(c) + 1} for c in cats],
        "annotations": [
            {"id": k + 1, "image_id": ids[r.image_id], "category_id": int(r.label) + 1, "bbox": bbox(r),
             "area": bbox(r)[2] * bbox(r)[3], "iscrowd": 0}
            for k, r in enumerate(truth.itertuples())
        ],
    }  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dets = [{"image_id": ids[r.image_id], "category_id": int(r.label) + 1, "bbox": bbox(r),
                 "score": float(r.score)} for r in pred.itertuples() if r.label in cats]  # fmt: skip
        evaluator = COCOeval(gt, gt.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    precision = evaluator.eval["precision"][:, :, :, 0, 2]  # (T, R, K), area "all", maxDets 100
    return float(evaluator.stats[0]), precision


def test_coco_ap_equals_pycocotools_with_correct_xywh() -> None:
    rng = np.random.default_rng(11)
    for _ in range(25):
        truth, pred = random_case(rng)
        if truth.empty or pred.empty:
            continue
        stat, precision = _pycocotools(truth, pred)
        classes = sorted(set(truth["label"]))
        table = coco_average_precision(truth, pred, classes=classes)
        assert table["ap"].mean() == pytest.approx(stat, abs=1e-9)
        per_class = precision.mean(axis=(0, 1))
        np.testing.assert_allclose(table["ap"].to_numpy(), per_class, atol=1e-9)
        np.testing.assert_allclose(table["ap50"].to_numpy(), precision[0].mean(axis=0), atol=1e-9)


def test_the_xywh_notebook_bug_changes_the_score_and_is_not_repeated() -> None:
    rng = np.random.default_rng(5)
    truth, pred = random_case(rng, n_images=40)
    ours = coco_average_precision(truth, pred, classes=sorted(set(truth["label"])))["ap"].mean()
    buggy, _ = _pycocotools(truth, pred, swap_bug=True)
    correct, _ = _pycocotools(truth, pred)
    assert ours == pytest.approx(correct, abs=1e-9)
    assert abs(buggy - correct) > 1e-3


def test_coco_keeps_the_top_100_per_image_and_class() -> None:
    truth = pd.DataFrame({"image_id": ["a"], "label": [0], "x_min": [0.0], "y_min": [0.0],
                          "x_max": [10.0], "y_max": [10.0]})  # fmt: skip
    far = pd.DataFrame({"image_id": "a", "label": 0, "x_min": 50.0, "y_min": 50.0, "x_max": 60.0,
                        "y_max": 60.0, "score": np.linspace(0.9, 0.5, 100)})  # fmt: skip
    hit = truth.assign(score=0.1)
    # The hit is the 101st by score: dropped, so AP 0 (with max_detections=101 it would count).
    both = pd.concat([far, hit], ignore_index=True)
    assert coco_average_precision(truth, both)["ap"].iloc[0] == 0.0
    assert coco_average_precision(truth, both, max_detections=101)["ap"].iloc[0] > 0.0


def test_iobb_is_intersection_over_the_predicted_box() -> None:
    truth = np.array([[0.0, 0.0, 10.0, 10.0]])
    inside = np.array([[2.0, 2.0, 4.0, 4.0]])  # small box inside the truth: IoBB 1, IoU 0.04
    assert paired_iobb(inside, truth)[0] == 1.0
    assert paired_iou(inside, truth)[0] == pytest.approx(0.04)


def test_localization_accuracy_by_hand() -> None:
    truth = pd.DataFrame({"image_id": ["a", "b", "c"], "label": ["Mass"] * 3, "x_min": [0.0] * 3,
                          "y_min": [0.0] * 3, "x_max": [10.0] * 3, "y_max": [10.0] * 3})  # fmt: skip
    # a: a small box inside (IoBB 1, IoU 0.04); b: a box half over the truth (IoBB 0.5, IoU 1/3);
    # c: nothing of its class, only a far false positive.
    pred = pd.DataFrame({"image_id": ["a", "b", "c"], "label": ["Mass"] * 3, "score": [1.0] * 3,
                         "x_min": [2.0, 5.0, 50.0], "y_min": [2.0, 0.0, 50.0], "x_max": [4.0, 15.0, 60.0],
                         "y_max": [4.0, 10.0, 60.0]})  # fmt: skip
    iobb = localization_accuracy(truth, pred, overlap="iobb", thresholds=[0.1, 0.5, 0.7]).set_index(
        "threshold"
    )
    assert iobb["accuracy"].tolist() == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert iobb.loc[0.1, "afp"] == pytest.approx(1 / 3)  # one false box over three images
    iou = localization_accuracy(truth, pred, overlap="iou", thresholds=[0.1, 0.3, 0.5]).set_index("threshold")
    assert iou["accuracy"].tolist() == pytest.approx([1 / 3, 1 / 3, 0.0])
