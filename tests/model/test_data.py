"""The sampler, the class balance and the box path from original pixels to the network's input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .model_helpers import ModelData, make_model_data


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> ModelData:
    return make_model_data(tmp_path_factory.mktemp("model-data"))


def test_epoch_sampler_deals_one_order_to_the_ranks() -> None:
    from cxrlab.model.data import EpochSampler

    ranks = [EpochSampler(10, seed=4, rank=r, world=3) for r in range(3)]
    dealt = [s.order() for s in ranks]
    assert [len(d) for d in dealt] == [4, 4, 4]  # 10 padded to 12
    assert set().union(*map(set, dealt)) == set(range(10))
    again = EpochSampler(10, seed=4, rank=1, world=3)
    assert again.order() == dealt[1]
    again.set_epoch(1)
    assert again.order() != dealt[1]


def test_balanced_sampling_draws_rare_labels_more_often() -> None:
    from cxrlab.model.data import EpochSampler, balanced_weights

    y = np.zeros((100, 2), dtype=np.float32)
    y[:90, 0] = 1  # common
    y[90:95, 1] = 1  # rare; 5 images without any positive
    w = balanced_weights(y)
    assert w.sum() == pytest.approx(1.0) and w[90] > 10 * w[0]
    drawn = EpochSampler(100, seed=0, weights=w).order()
    rare = sum(1 for i in drawn if 90 <= i < 95)
    assert rare > 20  # about a third of the draws, against 5 of 100 in a plain permutation


def test_boxes_reach_the_input_pixels(model_data: ModelData) -> None:
    """A truth box of the tables (DICOM pixels) lands on the same place of the network's input, whether the
    tables are the originals (scaled through the manifest) or convert's own (already converted)."""
    from cxrlab.model.data import CxrDataset, ImageFiles, image_targets, model_labels
    from cxrlab.tables import load_tables

    label_set, labels, box_labels = model_labels("vindr")
    files = ImageFiles.from_conversion(model_data.converted)
    outputs = []
    for folder in (model_data.tables, model_data.converted):
        t = load_tables(folder)
        targets = image_targets(t.images, t.findings, label_set, labels, box_labels)
        widths = dict(zip(t.images["image_id"].astype(str), t.images["width"].astype(float), strict=True))
        data = CxrDataset(targets, files, 32, table_widths=widths)
        outputs.append(
            {i: data.boxes[k][0] for k, i in enumerate(targets.image_ids) if len(data.boxes[k][0])}
        )
    original, converted = outputs
    assert original.keys() == converted.keys() and original
    for image_id in original:
        np.testing.assert_allclose(original[image_id], converted[image_id], atol=1e-3)
    images = load_tables(model_data.tables).images.set_index("image_id")
    image_id, boxes = next(iter(original.items()))
    assert (boxes <= 32 + 1e-6).all() and boxes.max() > 8  # the whole image is 32 px a side now
    assert images.at[image_id, "width"] > 64


def test_augmentation_is_a_function_of_seed_epoch_and_index(model_data: ModelData) -> None:
    from cxrlab.model.data import CxrDataset, ImageFiles, image_targets, model_labels
    from cxrlab.tables import load_tables

    label_set, labels, box_labels = model_labels("vindr")
    t = load_tables(model_data.tables)
    t_images = t.images[t.images["split"] == "train"]
    targets = image_targets(t_images, t.findings, label_set, labels, box_labels)
    files = ImageFiles.from_conversion(model_data.converted)
    a = CxrDataset(targets, files, 48, augment=True, seed=1)
    b = CxrDataset(targets, files, 48, augment=True, seed=1)
    torch.manual_seed(123)  # the global generator must not matter
    first = a[3]
    torch.manual_seed(456)
    assert torch.equal(first["image"], b[3]["image"]) and torch.equal(first["boxes"], b[3]["boxes"])
    b.set_epoch(1)
    assert not torch.equal(first["image"], b[3]["image"])
    plain = CxrDataset(targets, files, 48)
    assert not torch.equal(first["image"], plain[3]["image"])


def test_settings_file_then_flags(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cxrlab.errors import UsageError
    from cxrlab.model.config import resolve_config

    path = tmp_path / "settings.toml"
    path.write_text('tables = "t"\nimages = "i"\nout = "runs/r1"\nepochs = 7\narch = "resnet34"\n')
    cfg = resolve_config(path, epochs=3, arch=None)
    assert (cfg.epochs, cfg.arch, cfg.name) == (3, "resnet34", "r1")
    path.write_text('tables = "t"\nepoch = 7\n')
    with pytest.raises(UsageError, match="unknown setting"):
        resolve_config(path)
    with pytest.raises(UsageError, match=r"^image_size must be 32-4096"):
        resolve_config(tables="t", images="i", out="o", image_size=8)


def test_user_weights_load_into_the_grey_backbone(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A torchvision classification state dict (3-channel stem, 1000 classes) loads; the stem becomes the sum
    over its channels (the file's ImageNet classifier loads into the torchvision model but is never used)."""
    import torchvision

    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    torch.manual_seed(5)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), tmp_path / "r18.pt")
    _, labels, boxes = model_labels("nih")
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 64), weights=tmp_path / "r18.pt")
    stem = model.detector.backbone.body.conv1.weight
    assert stem.shape[1] == 1
    assert torch.allclose(stem, reference.conv1.weight.sum(dim=1, keepdim=True))
    deep = model.detector.backbone.body.get_submodule("layer4.1.conv2").weight
    assert torch.equal(deep, reference.layer4[1].conv2.weight)
    assert model.weights_loaded == len(reference.state_dict())


@pytest.mark.parametrize(
    "arch", ["resnet18", "resnet34", "resnet50", "densenet121", "efficientnet_b0", "convnext_tiny"]
)
def test_every_backbone_classifies_detects_and_maps(arch: str) -> None:
    from cxrlab.model.cam import cam_boxes
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("challenge")
    model = CxrNet(NetworkSpec(arch, labels, boxes, 64)).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
        detections = model.detections(x, out)
        found = cam_boxes(model.class_maps(out, [0, 3], 64))
    assert out["logits"].shape == (2, 15) and torch.isfinite(out["logits"]).all()
    assert len(detections) == 2
    pairs = set(zip(found.image.tolist(), found.label.tolist(), strict=True))
    assert pairs == {(0, 0), (0, 1), (1, 0), (1, 1)} and found.boxes.shape == (len(found.image), 4)
    assert (found.boxes[:, 2] > found.boxes[:, 0]).all() and (found.peak <= 1).all()


def test_training_boxes_are_those_of_labels_the_readers_agree_on() -> None:
    """One reader's box of a finding the two others did not mark (a likely false positive) trains neither
    the detector nor the class maps; each reader's box of a majority label does; a consensus reader
    decides alone. The targets themselves follow the same rule."""
    import pandas as pd

    from cxrlab.model.data import image_targets, model_labels

    label_set, labels, box_labels = model_labels("vindr")
    box = {"x_min": 10.0, "y_min": 10.0, "x_max": 30.0, "y_max": 30.0}
    rows = [
        {"image_id": "a", "reader": "R1", "label": "Nodule/Mass", **box},
        {"image_id": "a", "reader": "R2", "label": "Nodule/Mass", **box},
        {"image_id": "a", "reader": "R3", "label": "No finding"},
        {"image_id": "a", "reader": "R3", "label": "Pleural effusion", **box},
        {"image_id": "b", "reader": "consensus", "label": "Cardiomegaly", **box},
        {"image_id": "b", "reader": "R1", "label": "Pleural effusion", **box},
    ]
    findings = pd.DataFrame(rows)
    images = pd.DataFrame({"image_id": ["a", "b"]})
    for mode in ("majority", "soft"):
        t = image_targets(images, findings, label_set, labels, box_labels, mode)
        boxes_a, classes_a = t.boxes["a"]
        assert [box_labels[k] for k in classes_a] == ["Nodule/Mass", "Nodule/Mass"] and len(boxes_a) == 2
        assert [box_labels[k] for k in t.boxes["b"][1]] == ["Cardiomegaly"]
        effusion = t.y[0, labels.index("Pleural effusion")]
        assert effusion == (pytest.approx(1 / 3) if mode == "soft" else 0.0)
