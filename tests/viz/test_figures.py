"""Annotated figures from phantom tables: size, not blank, box outlines on the right pixels, legend entries,
display pixels equal to the conversion pipeline's (MONOCHROME1, VOI LUT), and the CLI's errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import viz_fixtures
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb

from cxrlab.tables import BOX_COLUMNS, Tables
from cxrlab.taxonomy import NIH, VINDR
from cxrlab.viz.colors import NO_FINDING_COLOR, label_color, reader_styles
from cxrlab.viz.figures import choose_readers, figure_of, panel_for, show_figure
from cxrlab.viz.source import ImageSource, load_display

nih_tables = viz_fixtures.nih_tables  # the shared session fixtures
vindr_tables = viz_fixtures.vindr_tables


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True, check=False
    )


def _busiest(findings: pd.DataFrame) -> str:
    """The image with the most boxes (ties: the first id)."""
    boxes = findings[findings[BOX_COLUMNS].notna().all(axis=1)]
    counts = boxes.groupby(boxes["image_id"].astype(str)).size()
    return str(counts.sort_index().idxmax())


def test_label_colours_are_fixed_per_finding_and_distinct_within_a_dataset() -> None:
    assert label_color("Effusion") == label_color("Pleural effusion")  # NIH and VinDr name one finding
    assert label_color("Fibrosis") == label_color("Pulmonary fibrosis")
    assert label_color("Mass") != label_color("Nodule")  # both map to Nodule/Mass; an NIH figure has both
    assert label_color("No finding") == NO_FINDING_COLOR
    assert label_color("Some new label") == label_color("some  new label")  # stable, tolerant hashing
    for label_set in (VINDR, NIH):
        named = [x for x in label_set.labels if x != "No finding"]
        assert len({label_color(x) for x in named}) == len(named), label_set.name
    styles = reader_styles(["R1", "R2", "R3", "model"])
    assert len({str(s) for s in styles.values()}) == 4


def _axes_pixels(fig, ax, x: float, y: float) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Row and column in the rendered canvas of data point (x, y) on ``ax``."""
    px, py = ax.transData.transform((x, y))
    height = fig.canvas.get_width_height()[1]
    return round(height - py), round(px)


def test_box_outline_lies_on_the_box_pixels(nih_tables: tuple[Path, Path, Tables]) -> None:
    _, images_dir, tables = nih_tables
    source = ImageSource(images_dir, tables.images)
    image_id = _busiest(tables.findings)
    panel = panel_for(source, image_id, tables.findings, max_side=512)
    assert len(panel.boxes) >= 1
    fig = figure_of([panel])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())[..., :3].astype(int)
    ax = fig.axes[0]
    box = panel.boxes.iloc[0]
    expected = np.array(to_rgb(label_color(str(box["label"])))) * 255
    x0, y0, x1, y1 = (float(box[c]) for c in BOX_COLUMNS)
    edge_points = [((x0 + x1) / 2, y0), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2), (x1, (y0 + y1) / 2)]
    for x, y in edge_points:
        r, c = _axes_pixels(fig, ax, x - 0.5, y - 0.5)
        window = rgba[r - 2 : r + 3, c - 2 : c + 3].reshape(-1, 3)
        distance = np.abs(window - expected).sum(axis=1).min()
        assert distance < 40, (x, y, window, expected)
    # the middle of a large enough box shows the radiograph (grey), not the outline colour
    if x1 - x0 > 20 and y1 - y0 > 20:
        r, c = _axes_pixels(fig, ax, (x0 + x1) / 2, (y0 + y1) / 2)
        pixel = rgba[r, c]
        assert np.ptp(pixel) <= 2, pixel
    # legend: one entry per label drawn and one per reader
    texts = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
    assert set(panel.boxes["label"].astype(str)) | {"nih"} <= texts


def test_show_writes_a_png_of_the_expected_size_that_is_not_blank(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path: Path
) -> None:
    _, tables = vindr_tables
    image_id = _busiest(tables.findings)
    source = ImageSource(vindr_phantom, tables.images)
    [out] = show_figure(tables.images, tables.findings, [image_id], source, tmp_path / "fig.png")
    img = cv2.imread(str(out))
    assert img is not None
    assert img.shape[1] > 500 and img.shape[0] > 400  # 4.2 in panel + legend at 110 dpi
    assert img.std() > 20  # a radiograph, not an empty canvas
    # the label colours of the boxes appear in the picture
    boxes = tables.findings[(tables.findings["image_id"] == image_id) & tables.findings["x_min"].notna()]
    for label in boxes["label"].astype(str).unique():
        bgr = (np.array(to_rgb(label_color(label)))[::-1] * 255).astype(int)
        close = (np.abs(img.astype(int) - bgr).sum(axis=2) < 30).sum()
        assert close > 20, label


def test_grid_and_svg_and_one_file_per_image(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path: Path
) -> None:
    _, tables = vindr_tables
    ids = tables.images["image_id"].astype(str).tolist()[:3]
    source = ImageSource(vindr_phantom, tables.images)
    [grid] = show_figure(tables.images, tables.findings, ids, source, tmp_path / "g.svg", grid=True)
    text = grid.read_text()
    assert text.lstrip().startswith("<?xml") and text.count("<image") == 3
    singles = show_figure(tables.images, tables.findings, ids, source, tmp_path / "one.png")
    assert [p.name for p in singles] == [f"one_{i}.png" for i in ids]
    assert all(p.stat().st_size > 10_000 for p in singles)


def test_readers_choice(vindr_tables: tuple[Path, Tables]) -> None:
    _, tables = vindr_tables
    readers = sorted(tables.findings["reader"].astype(str).unique())
    some = choose_readers(tables.findings, ",".join(readers[:2]))
    assert set(some["reader"]) == set(readers[:2])
    with pytest.raises(Exception, match="R999: no rows in the tables"):
        choose_readers(tables.findings, "R999")


def test_display_pixels_equal_the_conversion_pipeline(vindr_phantom: Path, tmp_path: Path) -> None:
    """Every phantom DICOM (MONOCHROME1, VOI LUT, windows, compressed syntaxes) shows exactly as convert
    writes it at the same size."""
    from cxrlab.imaging.convert import ConvertOptions, convert

    out = tmp_path / "conv"
    convert(vindr_phantom, out, ConvertOptions(size=200, keep_aspect=True), workers=1)
    manifest = pd.read_parquet(out / "manifest.parquet")
    ok = manifest[manifest["status"] == "ok"]
    assert ok["inverted"].any(), "the phantom should hold a MONOCHROME1 image"
    assert (ok["voi"] == "lut").any(), "the phantom should hold a VOI LUT"
    for row in ok.itertuples():
        shown = load_display(row.source, max_side=200)
        written = cv2.imread(str(out / row.output), cv2.IMREAD_UNCHANGED)
        assert shown.pixels.shape == written.shape, row.image_id
        assert np.array_equal(shown.pixels, written), row.image_id


def test_boxes_are_scaled_into_a_conversion_output(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path: Path
) -> None:
    from cxrlab.imaging.convert import ConvertOptions, convert

    folder, tables = vindr_tables
    out = tmp_path / "conv"
    convert(folder, out, ConvertOptions(size=128), workers=1, root=vindr_phantom)
    image_id = _busiest(tables.findings)
    original = panel_for(ImageSource(vindr_phantom, tables.images), image_id, tables.findings, max_side=4096)
    converted = panel_for(ImageSource(out, tables.images), image_id, tables.findings, max_side=4096)
    assert converted.pixels.shape == (128, 128)
    h, w = original.pixels.shape
    scale = np.array([128 / w, 128 / h, 128 / w, 128 / h])
    np.testing.assert_allclose(
        converted.boxes[BOX_COLUMNS].to_numpy(), original.boxes[BOX_COLUMNS].to_numpy() * scale
    )
    # the conversion's own (already rescaled) tables give the same boxes on the same pixels
    from cxrlab.tables import load_tables

    own = load_tables(out)
    again = panel_for(ImageSource(out, own.images), image_id, own.findings, max_side=4096)
    np.testing.assert_allclose(
        again.boxes[BOX_COLUMNS].to_numpy(), converted.boxes[BOX_COLUMNS].to_numpy(), atol=1e-6
    )


def test_show_cli_errors_are_one_line(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path: Path
) -> None:
    folder, tables = vindr_tables
    image_id = str(tables.images["image_id"].iloc[0])
    base = ["show", str(folder), image_id, "--images", str(vindr_phantom)]
    bad_reader = _cxrlab(*base, "--readers", "consensus,R999", "--out", str(tmp_path / "a.png"))
    assert bad_reader.returncode == 2, bad_reader.stderr
    assert "R999" in bad_reader.stderr and "Traceback" not in bad_reader.stderr
    bad_suffix = _cxrlab(*base, "--out", str(tmp_path / "a.jpg"))
    assert bad_suffix.returncode == 2 and ".png or .svg" in bad_suffix.stderr
    unknown = _cxrlab(
        "show", str(folder), "nope", "--images", str(vindr_phantom), "--out", str(tmp_path / "b.png")
    )
    assert unknown.returncode == 1 and "nope" in unknown.stderr
    assert not list(tmp_path.glob("*.png"))  # nothing written on failure
    ok = _cxrlab(*base, "--out", str(tmp_path / "c.png"))
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "c.png").stat().st_size > 10_000


def test_show_draws_a_models_boxes_with_their_own_line_and_score(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path: Path
) -> None:
    _, tables = vindr_tables
    image_id = _busiest(tables.findings)
    truth = tables.findings[(tables.findings["image_id"] == image_id) & tables.findings["x_min"].notna()]
    pred = truth.iloc[[0]].assign(reader="my-model", score=0.87)
    low = truth.iloc[[0]].assign(reader="my-model", score=0.2)  # under --min-score: not drawn
    path = tmp_path / "pred.csv"
    pd.concat([pred, low]).to_csv(path, index=False)
    run = _cxrlab("show", str(vindr_tables[0]), image_id, "--images", str(vindr_phantom), "--pred", str(path),
                  "--readers", str(truth["reader"].iloc[0]), "--out", str(tmp_path / "p.svg"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    texts = set(re.findall(r">([^<>]+)</text>", (tmp_path / "p.svg").read_text()))
    assert {"my-model", "0.87", image_id} <= texts
    assert "0.20" not in texts
