"""Training on a tiny phantom: it learns, writes its run folder, reloads to identical outputs, resumes after a
kill to the same weights, and predicts in original pixels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from .model_helpers import ModelData, make_model_data, run_cli, tiny_config

CLI = [sys.executable, "-m", "cxrlab.cli.main"]
ENV = {**os.environ, "CXRLAB_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> ModelData:
    return make_model_data(tmp_path_factory.mktemp("model-data"))


def test_tiny_training_learns_and_writes_its_run(model_data: ModelData, tmp_path: Path) -> None:
    from cxrlab.model.checkpoint import load_model
    from cxrlab.model.train import train

    cfg = tiny_config(model_data, tmp_path / "run", epochs=4, augment=False, lr=3e-3, val_fraction=0.2)
    result = train(cfg)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0], losses
    run = result.run
    for name in (
        "config.json",
        "last.pt",
        "best.pt",
        "metrics.csv",
        "loss.png",
        "metrics.png",
        "model_card.md",
        "split.parquet",
    ):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    log = pd.read_csv(run / "metrics.csv")
    assert log["epoch"].tolist() == [1, 2, 3, 4] and log["val_auroc"].notna().all()
    card = (run / "model_card.md").read_text()
    assert "Not for clinical use" in card and "resnet18" in card
    split = pd.read_parquet(run / "split.parquet")
    assert set(split["split"]) == {"train", "val"}
    tables = pd.read_parquet(model_data.tables / "images.parquet")
    test_ids = set(tables.loc[tables["split"] == "test", "image_id"])
    assert not test_ids & set(split["image_id"]), "the test split must never be trained on"

    model, state = load_model(run / "last.pt")
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
        detections = model.detections(x, out)
    assert out["logits"].shape == (3, len(model.spec.labels)) == (3, 28)
    assert len(detections) == 3 and detections[0]["boxes"].shape[1] == 4
    assert state["epoch"] == 3


def test_checkpoint_reloads_to_identical_outputs(tmp_path: Path) -> None:
    from cxrlab.model.checkpoint import load_model, save_checkpoint
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("vindr")
    torch.manual_seed(0)
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 64))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.rand(4, 1, 64, 64)
    model(x)["logits"].square().mean().backward()  # one step, so BatchNorm statistics and weights move
    optimizer.step()
    model.eval()
    save_checkpoint(tmp_path / "m.pt", {"spec": model.spec.to_dict(), "model": model.state_dict()})
    reloaded, _ = load_model(tmp_path / "m.pt")
    with torch.no_grad():
        a, b = model(x), reloaded(x)
    assert torch.isfinite(a["logits"]).all() and torch.equal(a["logits"], b["logits"])
    for key in a["head"]:
        assert torch.isfinite(a["head"][key]).all()
        assert torch.equal(a["head"][key], b["head"][key])


KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from cxrlab.model.config import resolve_config
    from cxrlab.model.train import train

    cfg = resolve_config(**json.loads(sys.argv[1]))

    def kill(epoch, step, model):
        if epoch == 1 and step == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    train(cfg, on_step=kill)
    """
)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_killed_mid_epoch_then_resumed_reaches_the_same_weights(
    model_data: ModelData, tmp_path: Path, capsys: pytest.CaptureFixture[str], ema: float
) -> None:
    from cxrlab.model.checkpoint import load_checkpoint
    from cxrlab.model.train import train

    settings = {"epochs": 2, "batch_size": 4, "val_fraction": 0.2, "ema": ema}
    reference = train(tiny_config(model_data, tmp_path / "straight", **settings))
    killed = tiny_config(model_data, tmp_path / "killed", **settings)
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, json.dumps(killed.to_dict())],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 0  # epoch 2 was cut short
    resumed = run_cli(capsys, "train", "--resume", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    for entry in ("model", "trained") if ema else ("model",):  # with ema: the average, the trained weights
        a = load_checkpoint(reference.run / "last.pt")[entry]
        b = load_checkpoint(tmp_path / "killed" / "last.pt")[entry]
        assert a.keys() == b.keys()
        different = [k for k in a if not torch.equal(a[k], b[k])]
        assert not different, f"{entry}: {len(different)} tensors differ, e.g. {different[:3]}"
    log = pd.read_csv(tmp_path / "killed" / "metrics.csv")
    assert log["epoch"].tolist() == [1, 2]


def test_the_moving_average_of_the_weights_is_what_a_run_keeps(model_data: ModelData, tmp_path: Path) -> None:
    """--ema: the checkpoint's model is the exponential moving average of the weights after every step
    (checked against the average taken by hand), the trained weights are kept beside it for --resume."""
    from cxrlab.model.checkpoint import load_checkpoint, load_model
    from cxrlab.model.train import train

    steps: list[dict[str, torch.Tensor]] = []

    def keep(epoch: int, step: int, model: torch.nn.Module) -> None:
        steps.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    decay = 0.8
    train(tiny_config(model_data, tmp_path / "run", epochs=2, ema=decay, lr=3e-3), on_step=keep)
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["average_steps"] == len(steps) > 2
    expected = dict(steps[0])
    for weights in steps[1:]:
        expected = {k: decay * expected[k] + (1 - decay) * v if v.is_floating_point() else v
                    for k, v in weights.items()}  # fmt: skip
    floating = [k for k, v in expected.items() if v.is_floating_point()]
    for key in floating:
        assert torch.allclose(state["model"][key], expected[key], atol=1e-6), key
        assert torch.equal(state["trained"][key], steps[-1][key]), key
    moved = [k for k in floating if not torch.allclose(state["model"][k], state["trained"][k], atol=1e-6)]
    assert len(moved) > len(floating) // 2, "the average must differ from the last weights"
    assert "weights: their moving average (decay 0.8)" in (tmp_path / "run" / "model_card.md").read_text()
    model, _ = load_model(tmp_path / "run" / "last.pt")  # what predict and evaluate use
    assert torch.equal(model.state_dict()[floating[0]], state["model"][floating[0]])


def test_predict_and_evaluate_from_the_cli(
    model_data: ModelData, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cxrlab.model.train import train

    run = train(
        tiny_config(model_data, tmp_path / "run", epochs=1, targets="soft", balanced=True, pool="lse")
    ).run
    pred = tmp_path / "pred"
    done = run_cli(capsys, "predict", run, model_data.raw / "test", "--out", pred, "--submission")
    assert done.returncode == 0, done.stderr
    findings = pd.read_parquet(pred / "findings.parquet")
    assert set(findings["source"]) == {"classifier", "cam", "detector"}
    assert set(findings["reader"]) == {"run"}
    images = pd.read_parquet(model_data.tables / "images.parquet").set_index("image_id")
    boxed = findings.dropna(subset=["x_min"])
    width = boxed["image_id"].map(images["width"]).to_numpy(float)
    # boxes come back in the DICOM's pixels (about 128 px), not the network's 64
    assert (boxed["x_max"].to_numpy(float) <= width + 1e-6).all()
    assert boxed["x_max"].max() > 64
    check = run_cli(
        capsys,
        "submission",
        "check",
        pred / "submission.csv",
        "--truth",
        model_data.tables,
        "--split",
        "test",
    )
    assert check.returncode == 0, check.stdout + check.stderr

    evaluated = run_cli(
        capsys,
        "evaluate",
        run,
        model_data.tables,
        "--images",
        model_data.converted,
        "--out",
        tmp_path / "eval",
        "--n-boot",
        "50",
        "--json",
    )
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert {"auroc", "map40", "iobb"} <= set(scores)
    assert 0 <= scores["map40"]["mAP"] <= 1
    card = (run / "model_card.md").read_text()
    assert "Test metrics (`cxrlab evaluate`" in card
    assert "CAM T(IoBB > 0.5), boxes from the class maps:" in card  # lse: its own maps, not sharpened


def test_targets_majority_and_soft_follow_the_readers() -> None:
    from cxrlab.model.data import image_targets, model_labels

    label_set, labels, boxes = model_labels("vindr")
    images = pd.DataFrame({"image_id": ["a", "b"]})
    nan = np.nan
    findings = pd.DataFrame(
        {
            "image_id": ["a", "a", "a", "a", "b", "b", "b"],
            "reader": ["R1", "R2", "R3", "R1", "R1", "R2", "consensus"],
            "label": [
                "Cardiomegaly",
                "Cardiomegaly",
                "No finding",
                "Nodule/Mass",
                "Lung Opacity",
                "No finding",
                "No finding",
            ],
            "x_min": [1, 2, nan, 5, nan, nan, nan],
            "y_min": [1, 2, nan, 5, nan, nan, nan],
            "x_max": [9, 8, nan, 7, nan, nan, nan],
            "y_max": [9, 8, nan, 7, nan, nan, nan],
        }
    )
    col = {label: j for j, label in enumerate(labels)}
    soft = image_targets(images, findings, label_set, labels, boxes, "soft").y
    major = image_targets(images, findings, label_set, labels, boxes, "majority")
    assert soft[0, col["Cardiomegaly"]] == pytest.approx(2 / 3)
    assert soft[0, col["Nodule/Mass"]] == pytest.approx(1 / 3)
    assert major.y[0, col["Cardiomegaly"]] == 1 and major.y[0, col["Nodule/Mass"]] == 0
    # image b has a consensus: majority follows it (No finding only), soft the two readers' shares
    assert major.y[1, col["Lung Opacity"]] == 0 and major.y[1, col["No finding"]] == 1
    assert soft[1, col["Lung Opacity"]] == pytest.approx(1 / 2)
    # both readers' Cardiomegaly boxes train; R1's lone Nodule/Mass box does not
    boxes_a, classes_a = major.boxes["a"]
    assert len(boxes_a) == 2 and classes_a.tolist() == [boxes.index("Cardiomegaly")] * 2


def test_cam_is_grad_cam_of_each_pooled_level() -> None:
    """With average pooling and a linear classifier, each level's CAM equals its Grad-CAM times h * w; and
    the means of the levels' maps, each at its own cells, plus the bias are the logit."""
    from cxrlab.model.cam import activation_maps
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("vindr")
    torch.manual_seed(1)
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 96)).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 96, 96))
    k = labels.index("Cardiomegaly")
    # Grad-CAM taken at the maps the classifier reads (C5 also feeds P3 through the pyramid)
    leaves = tuple(f.clone().requires_grad_(True) for f in out["cam_features"])
    pooled = torch.cat([torch.flatten(model.pool(f), 1) for f in leaves], dim=1)
    logit = model.classifier(pooled)[0, k]
    assert logit.item() == pytest.approx(out["logits"][0, k].item(), abs=1e-5)
    grads = torch.autograd.grad(logit, leaves)
    weight = model.classifier.weight.detach()
    start = 0
    for fmap, grad in zip(leaves, grads, strict=True):
        channels, area = fmap.shape[1], fmap.shape[2] * fmap.shape[3]
        alpha = grad.mean(dim=(2, 3))  # Grad-CAM's channel weights
        grad_cam = torch.einsum("bchw,bc->bhw", fmap.detach(), alpha) * area
        cam = torch.einsum("bchw,c->bhw", fmap.detach(), weight[k, start : start + channels])
        assert torch.allclose(cam, grad_cam, rtol=1e-4, atol=1e-5)
        start += channels
    shares, start = [], 0
    with torch.no_grad():  # each level's map at its own cells: its mean is that level's share of the logit
        for fmap in out["cam_features"]:
            part = weight[:, start : start + fmap.shape[1]]
            shares.append(activation_maps((fmap,), part, [k], fmap.shape[-1]).mean().item())
            start += fmap.shape[1]
    assert sum(shares) + model.classifier.bias[k].item() == pytest.approx(
        out["logits"][0, k].item(), abs=1e-4
    )


def test_cam_regions_each_get_a_box_tightened_to_their_core() -> None:
    """Two separate blobs give two boxes, strongest first; ``core`` shrinks each box around its own peak."""
    from cxrlab.model.cam import region_boxes

    yy, xx = np.mgrid[0:100, 0:100].astype(float)
    cam = np.exp(-((xx - 30) ** 2 + (yy - 40) ** 2) / 50) + 0.8 * np.exp(
        -((xx - 75) ** 2 + (yy - 70) ** 2) / 50
    )
    whole = region_boxes(cam, threshold=0.3, core=0.0)
    assert len(whole) == 2
    (first, peak1), (second, peak2) = whole
    assert peak1 == pytest.approx(1.0) and peak2 == pytest.approx(0.8, abs=0.01)
    assert first[0] < 30 < first[2] and first[1] < 40 < first[3]
    assert second[0] < 75 < second[2] and second[1] < 70 < second[3]
    tight = region_boxes(cam, threshold=0.3, core=0.9)
    for (big, _), (small, _) in zip(whole, tight, strict=True):
        assert big[0] < small[0] and small[2] < big[2]
        assert small[2] - small[0] < 0.6 * (big[2] - big[0])
    assert len(region_boxes(cam, threshold=0.3, max_regions=1)) == 1
    flat = region_boxes(np.zeros((10, 20)))
    assert flat == [((0.0, 0.0, 20.0, 10.0), 1.0)]


def test_lse_pool_lies_between_mean_and_max_and_matches_its_definition() -> None:
    """Checked against the formula written out with numpy: (1/r) log(mean(exp(r x)))."""
    from cxrlab.model.network import lse_pool

    torch.manual_seed(0)
    maps = torch.randn(2, 3, 5, 7) * 3
    for r in (0.5, 10.0):
        pooled = lse_pool(maps, r)
        flat = maps.flatten(2).double().numpy()
        expected = np.log(np.mean(np.exp(r * flat), axis=2)) / r
        np.testing.assert_allclose(pooled.numpy(), expected, rtol=1e-5, atol=1e-5)
        assert (pooled >= maps.flatten(2).mean(2) - 1e-5).all() and (
            pooled <= maps.flatten(2).amax(2) + 1e-5
        ).all()
    assert torch.allclose(lse_pool(torch.full((1, 1, 4, 4), 2.5), 10.0), torch.tensor([[2.5]]))
    # a single hot location dominates as r grows: the pooled value moves from the mean towards the maximum
    spike = torch.zeros(1, 1, 8, 8)
    spike[0, 0, 3, 4] = 5.0
    assert lse_pool(spike, 1.0).item() < lse_pool(spike, 10.0).item() < 5.0


def test_both_poolings_add_up_in_the_logits_and_in_the_cam() -> None:
    """With ``avg+lse``, each logit is the average-pooled classifier plus the LSE-pooled local map, and the
    class map the CAM boxes come from is the average part's map plus the upsampled local map; ``lse`` alone
    has no linear classifier, and a checkpoint's spec saved before ``pool`` existed reads as ``avg``."""
    from cxrlab.model.cam import activation_maps, to_input
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import LSE_SHARPNESS, CxrNet, NetworkSpec, lse_pool

    _, labels, boxes = model_labels("vindr")
    torch.manual_seed(2)
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 96, pool="avg+lse")).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.local.weight, std=1.0)  # type: ignore[union-attr]
        out = model(torch.rand(2, 1, 96, 96))
        pooled = torch.cat([torch.flatten(model.pool(f), 1) for f in out["cam_features"]], dim=1)
        expected = model.classifier(pooled) + lse_pool(out["local_maps"], LSE_SHARPNESS)
        assert torch.allclose(out["logits"], expected, atol=1e-5)
        k = [labels.index("Nodule/Mass")]
        maps = model.class_maps(out, k, 96)
        linear = activation_maps(out["cam_features"], model.classifier.weight, k, 96)
        peak = to_input(out["local_maps"][:, k], 96)
    assert out["local_maps"].shape == (2, len(labels), 12, 12)
    assert torch.allclose(maps, linear + peak, atol=1e-5) and not torch.allclose(maps, linear, atol=1e-3)
    lse = CxrNet(NetworkSpec("resnet18", labels, boxes, 96, pool="lse")).eval()
    with torch.no_grad():
        out = lse(torch.rand(1, 1, 96, 96))
        assert lse.classifier is None
        assert torch.allclose(out["logits"], lse_pool(out["local_maps"], LSE_SHARPNESS))
        assert torch.allclose(lse.class_maps(out, k, 12), out["local_maps"][:, k], atol=1e-5)
    old = NetworkSpec("resnet18", labels, boxes, 96).to_dict()
    del old["pool"]
    assert NetworkSpec.from_dict(old).pool == "avg"


def test_stride_4_class_maps_come_from_an_added_p2_and_leave_the_rest_unchanged(tmp_path: Path) -> None:
    """``map_stride`` 4 gives lse pooling maps at a quarter of the input; the linear classifier and FCOS keep
    P3-P7; the spec round-trips and a checkpoint of the other stride is refused on load."""
    from cxrlab.errors import CxrlabError, ParameterError
    from cxrlab.model.checkpoint import check_spec
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("vindr")
    torch.manual_seed(0)
    fine = CxrNet(NetworkSpec("resnet18", labels, boxes, 128, pool="avg+lse", map_stride=4)).eval()
    coarse = CxrNet(NetworkSpec("resnet18", labels, boxes, 128, pool="avg+lse")).eval()
    with torch.no_grad():
        a, b = fine(torch.rand(1, 1, 128, 128)), coarse(torch.rand(1, 1, 128, 128))
    assert a["local_maps"].shape[-2:] == (32, 32) and b["local_maps"].shape[-2:] == (16, 16)
    assert [f.shape[-1] for f in a["levels"]] == [f.shape[-1] for f in b["levels"]] == [16, 8, 4, 2, 1]
    assert a["cam_features"][1].shape == b["cam_features"][1].shape
    assert NetworkSpec.from_dict(fine.spec.to_dict()) == fine.spec
    legacy = coarse.spec.to_dict()
    del legacy["map_stride"], legacy["fpn_upsample"]
    assert NetworkSpec.from_dict(legacy).map_stride == 8
    assert NetworkSpec.from_dict(legacy).fpn_upsample == "nearest"  # what checkpoints before it used
    with pytest.raises(CxrlabError, match="map_stride"):
        check_spec(fine.spec, coarse.spec, tmp_path / "best.pt")
    with pytest.raises(ParameterError, match="map_stride"):
        tiny_config(ModelData(tmp_path, tmp_path, tmp_path), tmp_path / "run", map_stride=5)


def test_pyramid_cells_keep_the_backbones_centres() -> None:
    """The aligned pyramid's P2 and P3 cells (and the class maps read off P2) sit on input pixel s * m,
    measured by the input gradient of the middle cell; torchvision's nearest-neighbour top-down path puts
    them several pixels up and left of it, which is what ``aligned`` corrects."""
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec, upsample_cells

    coarse = torch.arange(4.0).view(1, 1, 1, 4)
    assert upsample_cells(coarse, (1, 8)).flatten().tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3]
    assert upsample_cells(coarse, (1, 7)).flatten().tolist() == [0, 0.5, 1, 1.5, 2, 2.5, 3]
    _, labels, boxes = model_labels("vindr")
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    offsets = {}
    for upsample in ("aligned", "nearest"):
        torch.manual_seed(0)
        spec = NetworkSpec("resnet18", labels, boxes, 256, pool="lse", map_stride=4, fpn_upsample=upsample)
        model = CxrNet(spec).eval()
        x = torch.rand(1, 1, 256, 256, requires_grad=True)
        out = model(x)
        for name, fmap, stride in (("map", out["local_maps"], 4), ("p3", out["cam_features"][1], 8)):
            m = fmap.shape[-1] // 2
            (grad,) = torch.autograd.grad(fmap[0, :, m, m].sum(), x, retain_graph=True)
            w = grad[0, 0].abs()
            dy = ((w * yy).sum() / w.sum()).item() - stride * m
            dx = ((w * xx).sum() / w.sum()).item() - stride * m
            offsets[upsample, name] = (dy, dx)
    for name in ("map", "p3"):
        assert max(map(abs, offsets["aligned", name])) <= 2.0, offsets
        assert min(offsets["nearest", name]) <= -4.0, offsets


def test_cam_cells_sit_on_the_input_pixels_their_convolutions_centre_on() -> None:
    """A cell of a stride-s level is centred on input pixel s * m (checked against the input gradient of a
    ResNet-18's C2, C3 and C5 cells); ``to_input`` puts it there, where an image resize would put it half a
    cell further down and right."""
    from cxrlab.model.cam import to_input
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("vindr")
    torch.manual_seed(0)
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 256)).eval()
    x = torch.rand(1, 1, 256, 256, requires_grad=True)
    levels = model.detector.backbone.body(x)
    yy, xx = torch.meshgrid(torch.arange(256.0), torch.arange(256.0), indexing="ij")
    for name in ("c2", "c3", "c5"):
        fmap = levels[name]
        cells = fmap.shape[-1]
        i = j = cells // 2  # the middle cell: the borders' zero padding does not pull its gradient aside
        (grad,) = torch.autograd.grad(fmap[0, :, i, j].abs().sum(), x, retain_graph=True)
        w = grad[0, 0].abs()
        centre = ((w * yy).sum() / w.sum()).item(), ((w * xx).sum() / w.sum()).item()
        one = torch.zeros(1, 1, cells, cells)
        one[0, 0, i, j] = 1.0
        placed = to_input(one, 256)[0, 0]
        peak = divmod(int(placed.argmax()), 256)
        stride = 256 // cells
        assert peak == (i * stride, j * stride) and placed.max().item() == pytest.approx(1.0)
        assert abs(centre[0] - peak[0]) <= 2.5 and abs(centre[1] - peak[1]) <= 2.5, (name, centre, peak)
        resized = torch.nn.functional.interpolate(one, size=(256, 256), mode="bilinear")[0, 0]
        shifted = divmod(int(resized.argmax()), 256)
        assert shifted[0] - centre[0] >= stride / 2 - 2.5  # what the resize got wrong


def test_a_run_saved_before_map_stride_and_aligned_pyramid_resumes_as_it_was(
    model_data: ModelData, tmp_path: Path
) -> None:
    """A checkpoint and config.json written before ``map_stride`` / ``fpn_upsample`` existed (an avg run,
    nearest-neighbour pyramid) resume with the network they were trained with, not today's defaults."""
    from cxrlab.model.checkpoint import load_checkpoint, save_checkpoint
    from cxrlab.model.config import CONFIG_FILE
    from cxrlab.model.train import read_run_config, train

    run = tmp_path / "run"
    train(tiny_config(model_data, run, epochs=1, pool="avg", augment=False))
    state = load_checkpoint(run / "last.pt")
    del state["spec"]["map_stride"], state["spec"]["fpn_upsample"]
    del state["config"]["map_stride"]
    save_checkpoint(run / "last.pt", state)
    config = json.loads((run / CONFIG_FILE).read_text())
    del config["map_stride"]
    (run / CONFIG_FILE).write_text(json.dumps(config))
    resumed = read_run_config(run)
    resumed.epochs = 2
    result = train(resumed, resume=True)
    assert len(result.history) == 2
    spec = load_checkpoint(run / "last.pt")["spec"]
    assert spec["fpn_upsample"] == "nearest" and spec["map_stride"] == 8


def test_pool_auto_is_lse_with_boxes_and_avg_without(model_data: ModelData, tmp_path: Path) -> None:
    from cxrlab.model.train import prepare_data

    boxed = prepare_data(tiny_config(model_data, tmp_path / "a"))
    weak = prepare_data(tiny_config(model_data, tmp_path / "b", boxes=False))
    chosen = prepare_data(tiny_config(model_data, tmp_path / "c", pool="avg+lse"))
    assert (boxed.spec.pool, weak.spec.pool, chosen.spec.pool) == ("lse", "avg", "avg+lse")
    assert boxed.spec.map_stride == 4 and boxed.spec.fpn_upsample == "aligned"
