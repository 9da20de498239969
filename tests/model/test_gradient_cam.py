"""Gradient class maps (Grad-CAM at stride 16 times LayerCAM at stride 8): each part against its definition,
the network's maps against a reference computed another way, and the choice of maps per network."""

from __future__ import annotations

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


def test_grad_cam_and_layer_cam_follow_their_definitions_location_by_location() -> None:
    from cxrlab.model.cam import grad_cam, layer_cam

    features, grads = _features_and_grads(0)
    f, g = features.double().numpy(), grads.double().numpy()
    expected_grad = np.zeros((2, 4, 6))
    expected_layer = np.zeros((2, 4, 6))
    for b in range(2):
        alpha = g[b].mean(axis=(1, 2))  # one weight per channel: its gradient averaged over the map
        for y in range(4):
            for x in range(6):
                expected_grad[b, y, x] = max(0.0, float(np.dot(alpha, f[b, :, y, x])))
                expected_layer[b, y, x] = max(0.0, float(np.dot(np.maximum(g[b, :, y, x], 0), f[b, :, y, x])))
    np.testing.assert_allclose(grad_cam(features, grads).numpy(), expected_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_cam(features, grads).numpy(), expected_layer, rtol=1e-5, atol=1e-6)
    assert (expected_grad > 0).any() and (expected_grad == 0).any()  # the rectification mattered


def test_grad_cam_of_an_average_pooled_linear_classifier_is_its_rectified_cam() -> None:
    """The gradient of ``w . mean(F)`` is ``w / (h * w)`` everywhere: Grad-CAM is the CAM, rectified."""
    from cxrlab.model.cam import activation_maps, grad_cam

    torch.manual_seed(1)
    features = torch.randn(3, 8, 5, 5, requires_grad=True)
    weight = torch.randn(2, 8)
    logits = features.mean(dim=(2, 3)) @ weight.T
    (grads,) = torch.autograd.grad(logits[:, 1].sum(), features)
    cam = activation_maps((features.detach(),), weight, [1], 5)[:, 0]
    assert torch.allclose(grad_cam(features.detach(), grads) * 25, torch.relu(cam), atol=1e-5)


def test_gradient_cam_is_the_product_of_both_maps_each_scaled_to_its_range() -> None:
    from cxrlab.model.cam import grad_cam, gradient_cam, layer_cam, to_input

    coarse, coarse_grads = _features_and_grads(2)
    fine, fine_grads = _features_and_grads(3)
    maps = gradient_cam(coarse, coarse_grads, fine, fine_grads, 24)
    assert maps.shape == (2, 24, 24)
    for b in range(2):
        parts = []
        for m in (grad_cam(coarse, coarse_grads), layer_cam(fine, fine_grads)):
            up = to_input(m[:, None], 24)[b, 0]
            parts.append((up - up.min()) / (up.max() - up.min()))
        assert torch.allclose(maps[b], parts[0] * parts[1], atol=1e-6)
    assert float(maps.min()) >= 0 and float(maps.max()) <= 1 + 1e-6


@pytest.mark.parametrize("pool", ["avg", "avg+lse"])
def test_network_gradient_maps_match_a_backward_pass_per_image(pool: str) -> None:
    """``gradient_maps`` (a batch, one ``autograd.grad`` per label, under ``no_grad``) against each image
    alone with ``backward`` and retained gradients; it leaves no parameter gradient and no hook behind."""
    from cxrlab.model.cam import gradient_cam
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, _ = model_labels("vindr", boxes=False)
    torch.manual_seed(4)
    model = CxrNet(NetworkSpec("resnet18", labels, (), 64, pool=pool, map_stride=4)).eval()
    images = torch.rand(2, 1, 64, 64)
    chosen = [labels.index("Nodule/Mass"), labels.index("Cardiomegaly")]
    with torch.no_grad():
        maps = model.gradient_maps(images, chosen, 64)
    assert maps.shape == (2, 2, 64, 64)
    peaks = maps.flatten(2).amax(dim=2)
    assert (peaks > 0.2).all() and (peaks <= 1 + 1e-6).all(), peaks  # no map is flat
    assert all(p.grad is None for p in model.parameters())
    assert not model.detector.backbone.body._forward_hooks
    levels: dict[str, torch.Tensor] = {}
    model.detector.backbone.body.register_forward_hook(lambda _m, _i, out: levels.update(out))
    for b in range(2):
        for j, k in enumerate(chosen):
            levels.clear()
            out = model(images[b : b + 1])
            for level in levels.values():
                level.retain_grad()
            out["logits"][0, k].backward()
            c3, c4 = levels["c3"], levels["c4"]
            expected = gradient_cam(c4.detach(), c4.grad, c3.detach(), c3.grad, 64)[0]  # type: ignore[arg-type]
            assert torch.allclose(maps[b, j], expected, atol=1e-4), (b, k)
    assert model.gradient_maps(images, [], 64).shape == (2, 0, 64, 64)


def test_auto_takes_gradient_maps_where_an_average_pooled_classifier_is_the_only_map() -> None:
    from cxrlab.errors import ParameterError
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec
    from cxrlab.model.predict import CamSettings, predict

    _, labels, boxes = model_labels("vindr")
    nets = {pool: CxrNet(NetworkSpec("resnet18", labels, boxes, 64, pool=pool)) for pool in ("avg", "lse")}
    assert CamSettings().uses_gradients(nets["avg"])
    assert not CamSettings().uses_gradients(nets["lse"])  # its class maps are trained on the boxes
    assert not CamSettings(method="cam").uses_gradients(nets["avg"])
    assert CamSettings(method="gradient").uses_gradients(nets["lse"])
    with pytest.raises(ParameterError, match="cam_method must be one of auto, cam, gradient"):
        predict("no-such-run", "no-such-images", cam_method="grad")
