"""``cxrlab phantom``: write synthetic datasets in the real VinDr-CXR and NIH ChestX-ray14 formats."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cxrlab.cli.common import console, flags, new_app, print_json

app = new_app(
    "Write phantom datasets: synthetic chest X-rays with lesions, in the datasets' own file formats."
)

Out = Annotated[
    Path, typer.Argument(help="Output folder: new, empty, or a previous phantom of the same kind.")
]
Images = Annotated[int, typer.Option("--images", "-n", help="Number of images.")]
Seed = Annotated[int, typer.Option(help="Seed: the same seed writes byte-identical files.")]
Size = Annotated[int, typer.Option(help="Image size in pixels (VinDr varies it a little; real ones ~3000).")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
FLAGS = {
    "images": "--images",
    "size": "--size",
    "layout": "--layout",
    "test_fraction": "--test-fraction",
    "archives": "--archives",
    "patients": "--patients",
}
"""The phantom writers' parameters and the flags that set them."""


@app.command()
def vindr(
    out: Out,
    images: Images = 20,
    seed: Seed = 0,
    size: Size = 1024,
    layout: Annotated[
        str,
        typer.Option(help="physionet (annotations/, train/, test/) or challenge (train.csv, Kaggle layout)."),
    ] = "physionet",
    test_fraction: Annotated[float, typer.Option(help="Share of images in the test set.")] = 0.2,
    json_out: Json = False,
) -> None:
    """A phantom VinDr-CXR: DICOMs of varied encodings, 3 readers per training image, a consensus test set."""
    from cxrlab.datasets.phantom import make_vindr

    with flags(**FLAGS):
        result = make_vindr(out, images=images, seed=seed, size=size, layout=layout,
                            test_fraction=test_fraction, progress=not json_out)  # fmt: skip
    _report(result.summary, result.root, json_out)


@app.command()
def nih(
    out: Out,
    images: Images = 20,
    seed: Seed = 0,
    size: Size = 1024,
    archives: Annotated[
        int | None,
        typer.Option(help="Number of images_NNN.tar.gz archives (default: 1 per 10 images, max 12)."),
    ] = None,
    json_out: Json = False,
) -> None:
    """A phantom NIH ChestX-ray14: PNG archives, Data_Entry_2017.csv, BBox_List_2017.csv, lists, MD5s."""
    from cxrlab.datasets.phantom import make_nih

    with flags(**FLAGS):
        result = make_nih(out, images=images, seed=seed, size=size, archives=archives, progress=not json_out)
    _report(result.summary, result.root, json_out)


@app.command()
def hospital(
    out: Out,
    patients: Annotated[int, typer.Option(help="Number of patients (each has 2 studies, 2-6 images).")] = 3,
    seed: Seed = 0,
    size: Annotated[int, typer.Option(help="Image size in pixels.")] = 256,
    json_out: Json = False,
) -> None:
    """A phantom hospital export: DICOMs full of fake patient information (names, dates, ids, private
    tags, PHI in sequences, burned-in text) for `cxrlab deid` and `cxrlab dicom phi-check`."""
    from cxrlab.datasets.phantom import make_hospital

    with flags(**FLAGS):
        result = make_hospital(out, patients=patients, seed=seed, size=size, progress=not json_out)
    _report(result.summary, result.root, json_out)


def _report(summary: dict[str, Any], root: Path, json_out: bool) -> None:
    if json_out:
        print_json({"root": str(root), **summary})
        return
    print_summary(summary, root, console)


def summary_table(summary: dict[str, Any], root: Path | None = None) -> Table:
    """The summary of a phantom as one two-column table (nested counts on one line each)."""
    title = f"Phantom {summary.get('dataset', '')}" + (f" in {root}" if root is not None else "")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        if key == "dataset":
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        elif key == "bytes":
            text = f"{value / 1e6:.1f} MB"
        else:
            text = str(value)
        table.add_row(key, text)
    return table


def print_summary(summary: dict[str, Any], root: Path | None, out: Console) -> None:
    out.print(summary_table(summary, root))
