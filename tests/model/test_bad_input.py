"""Bad input to train / predict: one line on stderr naming the problem, exit 1 (2 for usage), and nothing of
an existing run folder changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from .model_helpers import CliResult, ModelData, make_model_data, run_cli, tiny_config


@pytest.fixture(scope="module")
def model_data(tmp_path_factory: pytest.TempPathFactory) -> ModelData:
    return make_model_data(tmp_path_factory.mktemp("model-data"))


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    return lambda *args: run_cli(capsys, *args)


def _one_line(proc: CliResult, code: int, *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(model_data: ModelData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cxrlab.model.train import train

    return train(tiny_config(model_data, tmp_path_factory.mktemp("bad") / "run", epochs=1)).run


def _train_args(
    data: ModelData, out: Path, converted: Path | None = None, tables: Path | None = None
) -> list[str | Path]:
    return [
        "train",
        tables or data.tables,
        "--images",
        converted or data.converted,
        "--out",
        out,
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--threads",
        "1",
    ]


def test_missing_converted_images(cli, model_data: ModelData, tmp_path: Path) -> None:
    converted = tmp_path / "converted"
    shutil.copytree(model_data.converted, converted)
    images = pd.read_parquet(model_data.tables / "images.parquet")
    victim = images.loc[images["split"] == "train", "image_id"].iloc[0]
    (converted / f"{victim}.png").unlink()
    proc = cli(*_train_args(model_data, tmp_path / "run", converted))
    _one_line(proc, 1, str(converted), "no converted file", victim)
    assert not (tmp_path / "run").exists()
    no_folder = cli(*_train_args(model_data, tmp_path / "run", tmp_path / "nowhere"))
    _one_line(no_folder, 1, "nowhere")


def test_empty_label_set(cli, model_data: ModelData, tmp_path: Path) -> None:
    tables = tmp_path / "tables"
    shutil.copytree(model_data.tables, tables)
    findings = pd.read_parquet(tables / "findings.parquet")
    findings[findings["label"] == "No finding"].to_parquet(tables / "findings.parquet", index=False)
    proc = cli(*_train_args(model_data, tmp_path / "run", tables=tables))
    _one_line(proc, 1, "no finding of the vindr label set")
    assert not (tmp_path / "run").exists()
    unknown = cli(*_train_args(model_data, tmp_path / "run"), "--labels", "chexpert")
    _one_line(unknown, 2, "--labels")


def test_corrupt_checkpoint(cli, trained: Path, tmp_path: Path, model_data: ModelData) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 3])
    (run / "best.pt").write_bytes(b"not a checkpoint at all")
    before = _snapshot(run)
    _one_line(cli("train", "--resume", run), 1, "last.pt", "not a readable checkpoint")
    _one_line(cli("predict", run, model_data.converted, "--out", tmp_path / "pred"), 1, "best.pt")
    assert _snapshot(run) == before


def test_label_set_mismatch(cli, trained: Path, tmp_path: Path, model_data: ModelData) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    _one_line(cli("train", "--resume", run, "--labels", "nih"), 1, "trained with labels vindr", "not nih")
    # a run whose settings name another label set than its checkpoint holds
    config = (run / "config.json").read_text().replace('"labels": "vindr"', '"labels": "challenge"')
    (run / "config.json").write_text(config)
    before = _snapshot(run)
    _one_line(cli("train", "--resume", run), 1, "another label set", "28 labels vs 15")
    assert _snapshot(run) == before


def test_an_existing_run_is_never_overwritten(
    cli, trained: Path, tmp_path: Path, model_data: ModelData
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    before = _snapshot(run)
    _one_line(cli(*_train_args(model_data, run)), 1, "already holds a training run", "--resume")
    assert _snapshot(run) == before


def test_bad_user_weights(cli, model_data: ModelData, tmp_path: Path) -> None:
    import torch

    foreign = tmp_path / "foreign.pt"
    torch.save({"encoder.weight": torch.zeros(3, 3)}, foreign)
    proc = cli(*_train_args(model_data, tmp_path / "run"), "--weights", foreign)
    _one_line(proc, 1, "foreign.pt", "another architecture")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flag", "value", "problem"),
    [("--epochs", "0", "must be at least 1"), ("--lr", "-1", "must be positive"),
     ("--val-fraction", "1", "must be in [0, 1)"), ("--det-weight", "-0.5", "must be >= 0"),
     ("--ema", "1", "must be in [0, 1)")],
)  # fmt: skip
def test_a_bad_setting_names_its_flag_and_writes_nothing(
    model_data: ModelData, tmp_path: Path, cli, flag: str, value: str, problem: str
) -> None:
    run = tmp_path / "run"
    line = _one_line(cli(*_train_args(model_data, run), flag, value), 2, flag, problem)
    assert line.startswith(f"error: {flag} ")
    assert not run.exists()


def test_the_library_names_the_parameter_not_the_flag(model_data: ModelData, tmp_path: Path) -> None:
    from cxrlab.errors import ParameterError

    with pytest.raises(ParameterError, match=r"^val_fraction must be in \[0, 1\)") as caught:
        tiny_config(model_data, tmp_path / "run", val_fraction=1.5)
    assert caught.value.parameter == "val_fraction"
