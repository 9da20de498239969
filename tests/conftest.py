"""Shared fixtures: the real public files of the workplace's shared/realdata (skipped where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI") == "true"
"""Under CI a test needing a system package (chromium, orthanc, postgresql) fails where it is absent."""
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = SHARED / "realdata"


def realdata_path(*parts: str) -> Path:
    """Path under ../shared/realdata, or skip the test where this workplace's shared folder is absent."""
    path = REALDATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared exists only in the cxrlab workplace)")
    return path


@pytest.fixture
def realdata() -> Path:
    return realdata_path()


@pytest.fixture(autouse=True)
def _no_progress_bars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXRLAB_NO_PROGRESS", "1")


# Phantom datasets in the real formats, built once per test session (a second or two each).
@pytest.fixture(scope="session")
def vindr_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom VinDr-CXR, PhysioNet layout: 12 images (train + test), about 256 px, seed 0."""
    from cxrlab.datasets.phantom import make_vindr

    return make_vindr(tmp_path_factory.mktemp("vindr-phantom"), images=12, seed=0, size=256).root


@pytest.fixture(scope="session")
def vindr_phantom_challenge(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same phantom VinDr-CXR in the VinBigData challenge layout (train.csv, train/, test/)."""
    from cxrlab.datasets.phantom import make_vindr

    root = tmp_path_factory.mktemp("vindr-phantom-challenge")
    return make_vindr(root, images=12, seed=0, size=256, layout="challenge").root


@pytest.fixture(scope="session")
def nih_phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom NIH ChestX-ray14: 30 PNGs of 256 px in 3 archives, seed 0."""
    from cxrlab.datasets.phantom import make_nih

    return make_nih(tmp_path_factory.mktemp("nih-phantom"), images=30, seed=0, size=256, archives=3).root
