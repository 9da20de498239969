"""Helpers of the model tests: a tiny phantom VinDr-CXR fused and converted at 64 px, tiny settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ModelData:
    raw: Path
    tables: Path
    converted: Path


def make_model_data(
    root: Path, images: int = 24, size: int = 128, px: int = 64, test_fraction: float = 0.2
) -> ModelData:
    from cxrlab.datasets.phantom import make_vindr
    from cxrlab.datasets.vindr import index_vindr
    from cxrlab.imaging.convert import ConvertOptions, convert
    from cxrlab.labels.consensus import consensus
    from cxrlab.tables import save_tables

    raw = make_vindr(root / "raw", images=images, seed=0, size=size, test_fraction=test_fraction).root
    index = index_vindr(raw)
    fused = consensus(index.images, index.findings, method="wbf", iou=0.4, min_readers=2)
    tables = save_tables(root / "tables", index.images, fused.findings)
    converted = root / "converted"
    convert(tables, converted, ConvertOptions(size=px), root=raw)
    return ModelData(raw, tables, converted)


def tiny_config(data: ModelData, out: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """Settings small enough for a test: 64 px, ResNet-18, two epochs of ~20 images, one thread."""
    from cxrlab.model.config import resolve_config

    settings: dict[str, object] = {"image_size": 64, "epochs": 2, "batch_size": 8, "threads": 1, "seed": 3}
    settings.update(overrides)
    return resolve_config(tables=str(data.tables), images=str(data.converted), out=str(out), **settings)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(capsys: object, *args: object) -> CliResult:
    """``cxrlab ARGS`` in this process (a subprocess costs seconds of imports): exit code, stdout, stderr."""
    import sys

    from cxrlab.cli.main import main

    capsys.readouterr()  # type: ignore[attr-defined]
    argv = sys.argv
    sys.argv = ["cxrlab", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    out = capsys.readouterr()  # type: ignore[attr-defined]
    return CliResult(code, out.out, out.err)
