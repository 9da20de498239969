"""Phantom tables for the figure, plot and report tests (imported by them: a conftest.py here would shadow
the top one): VinDr-CXR (3 readers, DICOMs) and NIH (PNGs), indexed."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlab.tables import Tables


@pytest.fixture(scope="session")
def vindr_tables(vindr_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Tables]:
    """The session's VinDr phantom indexed with its DICOM headers: (tables folder, tables)."""
    from cxrlab.datasets.vindr import index_vindr
    from cxrlab.tables import save_tables

    index = index_vindr(vindr_phantom)
    folder = save_tables(tmp_path_factory.mktemp("vindr-tables"), index.images, index.findings)
    return folder, Tables(index.images, index.findings)


@pytest.fixture(scope="session")
def nih_tables(nih_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Tables]:
    """The session's NIH phantom extracted and indexed: (tables folder, images folder, tables)."""
    from cxrlab.datasets.nih import index_nih, write_index
    from cxrlab.datasets.nih_archives import extract_folder

    images = tmp_path_factory.mktemp("nih-png")
    extract_folder(nih_phantom, images)
    index = index_nih(nih_phantom, images_dir=images)
    folder = write_index(index, tmp_path_factory.mktemp("nih-tables"))
    return folder, images, Tables(index.images, index.findings)
