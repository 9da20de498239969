"""CAM sharpened by LayerCAM at stride 4: LayerCAM against its definition, the network's sharpened maps
against a reference computed another way, and the choice of maps per network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch


def _features_and_grads(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (2, 5, 4, 6) and the gradient of a non-linear score of them, per image."""
    torch.manual_seed(seed)
    features = torch.randn(2, 5, 4, 6, requires_grad=True)
    w, v = torch.randn(5), torch.randn(5, 1, 1)
    score = features.mean(dim=(2, 3)) @ w + (torch.tanh(features) * v).sum(dim=(1, 2, 3))
    (grads,) = torch.autograd.grad(score.sum(), features)
    return features.detach(), grads


def test_layer_cam_follows_its_definition_location_by_location() -> None:
    from cxrlab.model.cam import layer_cam

    features, grads = _features_and_grads(0)
    f, g = features.double().numpy(), grads.double().numpy()
    expected = np.zeros((2, 4, 6))
    for b in range(2):
        for y in range(4):
            for x in range(6):
                expected[b, y, x] = max(0.0, float(np.dot(np.maximum(g[b, :, y, x], 0), f[b, :, y, x])))
    np.testing.assert_allclose(layer_cam(features, grads).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert (expected > 0).any() and (expected == 0).any()  # both rectifications mattered
    assert (g < 0).any()


def test_sharpen_multiplies_both_maps_each_scaled_to_its_range() -> None:
    from cxrlab.model.cam import sharpen

    torch.manual_seed(3)
    maps, fine = torch.randn(2, 3, 8, 8) * 5 + 2, torch.rand(2, 3, 8, 8) * 0.1
    out = sharpen(maps, fine)
    for b in range(2):
        for k in range(3):
            m, f = maps[b, k], fine[b, k]
            expected = (m - m.min()) / (m.max() - m.min()) * (f - f.min()) / (f.max() - f.min())
            assert torch.allclose(out[b, k], expected, atol=1e-6)
    assert float(out.min()) >= 0 and float(out.max()) <= 1 + 1e-6
    assert torch.equal(sharpen(torch.ones(1, 1, 8, 8), fine[:1, :1]), torch.zeros(1, 1, 8, 8))  # flat map


@pytest.mark.parametrize("pool", ["avg", "avg+lse"])
def test_sharpened_maps_match_a_backward_pass_per_image(pool: str) -> None:
    """``sharpened_maps`` (a batch, one ``autograd.grad`` per label, under ``no_grad``) against each image
    alone with ``backward`` and retained gradients; it leaves no parameter gradient and no hook behind."""
    from cxrlab.model.cam import layer_cam, sharpen, to_input
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, _ = model_labels("vindr", boxes=False)
    torch.manual_seed(4)
    model = CxrNet(NetworkSpec("resnet18", labels, (), 64, pool=pool, map_stride=4)).eval()
    images = torch.rand(2, 1, 64, 64)
    chosen = [labels.index("Nodule/Mass"), labels.index("Cardiomegaly")]
    with torch.no_grad():
        maps = model.sharpened_maps(images, chosen, 64)
        plain = model.class_maps(model(images), chosen, 64)
    assert maps.shape == (2, 2, 64, 64)
    peaks = maps.flatten(2).amax(dim=2)
    assert (peaks > 0.2).all() and (peaks <= 1 + 1e-6).all(), peaks  # no map is flat
    assert not torch.allclose(maps, sharpen(plain, torch.ones_like(plain) + plain), atol=1e-3)
    assert all(p.grad is None for p in model.parameters())
    assert not model.detector.backbone.body._forward_hooks
    levels: dict[str, torch.Tensor] = {}
    model.detector.backbone.body.register_forward_hook(lambda _m, _i, out: levels.update(out))
    for b in range(2):
        for j, k in enumerate(chosen):
            levels.clear()
            out = model(images[b : b + 1])
            c2 = levels["c2"]
            assert c2.shape[-2:] == (16, 16)  # stride 4
            c2.retain_grad()
            out["logits"][0, k].backward()
            assert c2.grad is not None
            fine = to_input(layer_cam(c2.detach(), c2.grad)[:, None], 64)
            expected = sharpen(plain[b : b + 1, j : j + 1], fine)[0, 0]
            assert torch.allclose(maps[b, j], expected, atol=1e-4), (b, k)
    assert model.sharpened_maps(images, [], 64).shape == (2, 0, 64, 64)


def test_auto_sharpens_where_an_average_pooled_classifier_is_the_only_map() -> None:
    from cxrlab.errors import ParameterError
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec
    from cxrlab.model.predict import CamSettings, predict

    _, labels, boxes = model_labels("vindr")
    nets = {pool: CxrNet(NetworkSpec("resnet18", labels, boxes, 64, pool=pool)) for pool in ("avg", "lse")}
    assert CamSettings().sharpens(nets["avg"])
    assert not CamSettings().sharpens(nets["lse"])  # its class maps are trained on the boxes
    assert not CamSettings(method="cam").sharpens(nets["avg"])
    assert CamSettings(method="layercam").sharpens(nets["lse"])
    with pytest.raises(ParameterError, match="cam_method must be one of auto, cam, layercam"):
        predict("no-such-run", "no-such-images", cam_method="gradient")


def test_a_run_without_boxes_predicts_sharpened_cam_boxes_and_says_so(tmp_path: Path) -> None:
    """End to end: a tiny ``--no-boxes`` run (``auto`` = avg) predicts CAM boxes from sharpened maps, the
    model card names them, and ``cam`` gives the plain class maps' boxes instead."""
    from cxrlab.model.evaluate import evaluate
    from cxrlab.model.predict import predict
    from cxrlab.model.train import train

    from .model_helpers import make_model_data, tiny_config

    data = make_model_data(tmp_path / "data")
    run = train(tiny_config(data, tmp_path / "run", epochs=1, boxes=False)).run
    sharp = predict(run, data.converted, tmp_path / "sharp")
    plain = predict(run, data.converted, tmp_path / "plain", cam_method="cam")
    assert (sharp.cam_maps, plain.cam_maps) == ("class maps sharpened by LayerCAM", "class maps")
    boxes = [p.findings[p.findings["source"] == "cam"] for p in (sharp, plain)]
    assert len(boxes[0]) and len(boxes[1])
    assert set(sharp.findings["source"]) == {"classifier", "cam"}  # no detector without boxes
    columns = ["x_min", "y_min", "x_max", "y_max"]
    assert not np.array_equal(boxes[0][columns].to_numpy(), boxes[1][columns].to_numpy())
    evaluate(run, data.tables, data.converted, tmp_path / "eval", n_boot=20)
    assert "boxes from the class maps sharpened by LayerCAM" in (run / "model_card.md").read_text()
