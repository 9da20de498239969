"""A tiny phantom VinDr-CXR, fused and converted at 64 px, shared by the model tests (a few seconds)."""

from __future__ import annotations

import pytest
from model_helpers import ModelData, make_model_data


@pytest.fixture(scope="session")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> ModelData:
    return make_model_data(tmp_path_factory.mktemp("model-data"))
