"""cxrlab report: one self-contained page, its numbers, and the page in headless chromium (images load, no
network request, nothing wider than a 1280 px window)."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import viz_fixtures
from sklearn.metrics import roc_curve
from viz_browser import chromium

from cxrlab.labels.consensus import consensus
from cxrlab.metrics.scoring import select_truth, simulate_predictions
from cxrlab.tables import Tables, save_tables, write_parquet
from cxrlab.viz.model import FPR_GRID, _weighted_roc, roc_band
from cxrlab.viz.report import build_report
from cxrlab.viz.source import ImageSource
from cxrlab.viz.statistics import label_statistics

nih_tables = viz_fixtures.nih_tables  # the shared session fixtures
vindr_tables = viz_fixtures.vindr_tables


class _Page(HTMLParser):
    """Every img src, every href and src-like attribute, section ids and table cells of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.sections: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("href", "src", "action", "poster", "data"):
            if key in a and tag != "img":
                self.links.append(a[key] or "")
        if tag == "section":
            self.sections.append(a.get("id") or "")
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def vindr_report(
    vindr_tables: tuple[Path, Tables], vindr_phantom: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Tables]:
    """The report of the VinDr phantom with a consensus reader, its images and a simulated model."""
    _, tables = vindr_tables
    work = tmp_path_factory.mktemp("report")
    fused = consensus(tables.images, tables.findings, method="wbf", iou=0.4, min_readers=2)
    with_consensus = Tables(tables.images, fused.findings)
    save_tables(work / "tables", with_consensus.images, with_consensus.findings)
    preds = simulate_predictions(select_truth(with_consensus), seed=0)
    pred_path = write_parquet(preds, work / "pred.parquet")
    source = ImageSource(vindr_phantom, tables.images)
    summary = build_report(
        with_consensus, work / "report.html", source=source, predictions=[pred_path], n_boot=50
    )
    assert summary.thumbnails > 0 and summary.figures >= 8
    return summary.path, with_consensus


def test_report_has_every_section_and_only_inline_images(vindr_report: tuple[Path, Tables]) -> None:
    path, _ = vindr_report
    page = _parse(path)
    assert page.sections == ["labels", "patients", "cooccurrence", "boxes", "readers", "samples", "model1"]
    assert len(page.images) >= 10
    assert all(re.fullmatch(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=]+", s) for s in page.images)
    assert all(link.startswith("#") for link in page.links), page.links
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert not list(path.parent.glob("*.tmp")) and not list(path.parent.glob(".*.tmp"))


def test_report_counts_are_the_label_statistics(vindr_report: tuple[Path, Tables]) -> None:
    path, tables = vindr_report
    stats = label_statistics(tables.images, tables.findings)
    rows = {r[0]: r for r in _parse(path).rows if r}
    for label, n in stats.overall.items():
        assert rows[label][1].split()[0] == f"{int(n):,}", label


def _check_in_browser(browser, path: Path, width: int = 1280) -> dict:  # type: ignore[no-untyped-def]
    page = browser.new_page(viewport={"width": width, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    result = page.evaluate(
        """() => {
        const imgs = Array.from(document.images);
        const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt);
        const clipped = (el) => {
            for (let p = el.parentElement; p; p = p.parentElement) {
                const o = getComputedStyle(p).overflowX;
                if (o === 'auto' || o === 'scroll' || o === 'hidden') return true;
            }
            return false;
        };
        const wide = Array.from(document.querySelectorAll('body *'))
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !clipped(e))
            .map(e => e.tagName + '.' + e.className);
        return {images: imgs.length, broken, wide,
                scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth};
    }"""
    )
    page.close()
    result["requests"] = requests
    return result


def test_report_in_headless_chromium(vindr_report: tuple[Path, Tables]) -> None:
    path, _ = vindr_report
    with chromium() as browser:
        result = _check_in_browser(browser, path)
    assert result["images"] >= 10
    assert result["broken"] == []
    outside = [u for u in result["requests"] if not u.startswith(("file://", "data:"))]
    assert outside == [], outside
    assert result["scrollWidth"] <= result["innerWidth"]
    assert result["wide"] == []


def test_weighted_roc_matches_sklearn_and_duplicated_rows() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.3).astype(float)
    s = np.round(rng.random(300) + 0.4 * y, 2)  # ties on purpose
    fpr, tpr, _ = roc_curve(y, s)
    ours = _weighted_roc(y, s, np.ones((300, 1)))[0]
    # sklearn's curve read at the grid: the same piecewise-linear curve
    np.testing.assert_allclose(ours, np.interp(FPR_GRID, fpr, tpr), atol=1e-12)
    w = rng.integers(0, 3, 300)
    dup = _weighted_roc(np.repeat(y, w), np.repeat(s, w), np.ones((int(w.sum()), 1)))[0]
    np.testing.assert_allclose(_weighted_roc(y, s, w[:, None].astype(float))[0], dup, atol=1e-12)
    point, low, high = roc_band(y, s, None, n_boot=200, seed=0)
    assert np.all(low <= high + 1e-12)
    assert np.mean((low - 1e-9 <= point) & (point <= high + 1e-9)) > 0.95
    assert (high - low)[10:90].mean() > 0.02  # a real band, not a line


def test_report_cli_without_images(nih_tables: tuple[Path, Path, Tables], tmp_path: Path) -> None:
    folder, _, tables = nih_tables
    out = tmp_path / "nih.html"
    run = subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "report", str(folder), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert re.search(rf"Report of {len(tables.images)} images: 4 sections, \d+ plots, 0 images", run.stdout)
    page = _parse(out)
    assert page.sections == ["labels", "patients", "cooccurrence", "boxes"]  # one reader: no agreement
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "cxrlab.cli.main",
            "report",
            str(folder),
            "--out",
            str(out),
            "--pred",
            str(tmp_path / "none.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "none.parquet" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_report_of_200_sample_images_stays_under_15_mb(tmp_path: Path) -> None:
    """200 NIH phantom radiographs, each shown once: the page stays small. Thumbnails are drawn at a fixed
    size (about 330 px), so 512 px sources give the same page as the real 1024 px ones, 4x faster to make."""
    from cxrlab.datasets.nih import index_nih
    from cxrlab.datasets.nih_archives import extract_folder
    from cxrlab.datasets.phantom import make_nih

    raw = make_nih(tmp_path / "raw", images=200, seed=2, size=512).root
    extract_folder(raw, tmp_path / "png")
    index = index_nih(raw, images_dir=tmp_path / "png")
    tables = Tables(index.images, index.findings)
    summary = build_report(
        tables, tmp_path / "r.html", source=ImageSource(tmp_path / "png", index.images), samples_per_label=200
    )
    assert summary.thumbnails == 200
    assert summary.bytes < 15e6, summary.bytes
    print(f"page of 200 sample images: {summary.bytes / 1e6:.1f} MB")
    page = _parse(summary.path)
    assert len(page.images) >= 200
    with chromium() as browser:
        result = _check_in_browser(browser, summary.path)
    assert result["broken"] == [] and result["wide"] == []


@pytest.mark.slow
def test_report_of_the_real_nih_label_files(realdata: Path, tmp_path: Path) -> None:
    """The 112,120-row Data_Entry and the 984 boxes indexed by `cxrlab nih index`, then `cxrlab report`
    (its time is measured in bench/bench_look.py)."""
    nih = realdata / "nih"
    run = [sys.executable, "-m", "cxrlab.cli.main"]
    index = subprocess.run(
        [*run, "nih", "index", str(nih), "--out", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert index.returncode in (0, 1), index.stderr
    report = subprocess.run(
        [*run, "report", str(tmp_path / "t"), "--out", str(tmp_path / "r.html")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert report.returncode == 0, report.stderr
    assert "Report of 112,120 images" in report.stdout
    rows = {r[0]: r for r in _parse(tmp_path / "r.html").rows if r}
    entry = pd.read_csv(nih / "Data_Entry_2017_v2020.csv.gz", usecols=["Finding Labels"])
    effusion = int(entry["Finding Labels"].str.split("|").map(lambda xs: "Effusion" in xs).sum())
    assert rows["Effusion"][1].split()[0] == f"{effusion:,}"


def test_missing_image_files_are_named_and_the_report_still_written(
    nih_tables: tuple[Path, Path, Tables], tmp_path: Path
) -> None:
    _, _, tables = nih_tables
    empty = tmp_path / "no-images"
    empty.mkdir()
    summary = build_report(
        tables, tmp_path / "r.html", source=ImageSource(empty, tables.images), samples_per_label=1
    )
    assert summary.thumbnails == 0 and summary.path.is_file()
    assert (
        len(summary.notes) == 1
        and "could not be shown" in summary.notes[0]
        and "no such image file" in summary.notes[0]
    )
