"""Shared fixtures: the real public files of ../shared/realdata (skipped cleanly where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


IN_CI = os.environ.get("CI") == "true"
