from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from cxrlab import tables
from cxrlab.tables import TableError


def _images() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "dataset": ["phantom"] * 2,
            "split": ["train", "test"],
            "patient_id": ["p1", "p2"],
            "path": ["train/a.dicom", "test/b.dicom"],
            "width": [100, 120],
            "height": [100, 110],
            "sex": ["M", None],
            "age": [45, None],
            "view": ["PA", "PA"],
        }
    )


def _findings() -> pd.DataFrame:
    nan = math.nan
    return pd.DataFrame(
        {
            "image_id": ["a", "a", "b"],
            "reader": ["R1", "R2", "R1"],
            "label": ["Nodule/Mass", "Pneumonia", "No finding"],
            "x_min": [10.0, nan, nan],
            "y_min": [10.0, nan, nan],
            "x_max": [20.0, nan, nan],
            "y_max": [30.0, nan, nan],
            "score": [1.0, 1.0, 1.0],
        }
    )


def test_round_trip(tmp_path: Path) -> None:
    tables.save_tables(tmp_path, _images(), _findings())
    loaded = tables.load_tables(tmp_path)
    assert loaded.images["image_id"].tolist() == ["a", "b"]
    assert loaded.findings["label"].tolist() == ["Nodule/Mass", "Pneumonia", "No finding"]
    assert loaded.findings["x_min"].isna().sum() == 2
    assert tables.has_box(loaded.findings).tolist() == [True, False, False]
    assert not list(tmp_path.glob("*.tmp"))


def test_validation_names_offending_rows() -> None:
    bad = _findings()
    bad.loc[0, "x_max"] = 5.0  # x_max <= x_min
    with pytest.raises(TableError, match=r"1 row\(s\) with x_max <= x_min.*row 0: image_id=a"):
        tables.validate_findings(bad)


def test_partial_box_and_score_are_rejected() -> None:
    bad = _findings()
    bad.loc[1, "x_min"] = 3.0
    bad.loc[2, "score"] = 1.5
    with pytest.raises(TableError) as info:
        tables.validate_findings(bad)
    assert "some but not all box coordinates" in str(info.value)
    assert "score outside [0, 1]" in str(info.value)


def test_unknown_image_and_duplicate_ids() -> None:
    images = _images()
    findings = _findings()
    findings.loc[2, "image_id"] = "zzz"
    with pytest.raises(TableError, match=r"absent from the images table.*image_id=zzz"):
        tables.validate_findings(findings, images)
    dup = pd.concat([images, images.iloc[[0]]])
    with pytest.raises(TableError, match="duplicated image_id"):
        tables.validate_images(dup)


def test_missing_column_and_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="lacks column"):
        tables.validate_images(_images().drop(columns=["split"]))
    broken = tmp_path / "images.parquet"
    broken.write_bytes(b"not parquet")
    (tmp_path / "findings.parquet").write_bytes(b"")
    with pytest.raises(TableError, match=r"images\.parquet: not a readable Parquet file"):
        tables.load_tables(tmp_path)


def test_empty_tables_have_the_schema() -> None:
    assert list(tables.empty_images().columns) == list(tables.IMAGE_COLUMNS)
    assert list(tables.empty_findings().columns) == list(tables.FINDING_COLUMNS)


def test_isin_strings_matches_pandas_isin() -> None:
    """The pyarrow lookup against pandas' ``isin`` on Arrow strings, object strings, NA and non-strings."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    pool = [f"{i:08d}_{j:03d}" for i in range(300) for j in range(3)]
    values = pd.Series([*rng.choice(pool, 500).tolist(), None, "", "x"], dtype="string")
    allowed = pd.Series([*rng.choice(pool, 400).tolist(), ""], dtype="string")
    expected = values.isin(allowed).fillna(False).to_numpy(dtype=bool)
    assert tables.isin_strings(values, allowed).tolist() == expected.tolist()
    assert tables.isin_strings(values.astype(object), list(allowed)).tolist() == expected.tolist()
    assert tables.isin_strings(pd.Index(values), pd.Index(allowed)).tolist() == expected.tolist()
    with_na = pd.Series(["a", None], dtype="string")
    assert tables.isin_strings(with_na, pd.Series(["a", None], dtype="string")).tolist() == [True, True]
    assert tables.isin_strings(pd.Series([1, 2, 3]), [2, 3]).tolist() == [False, True, True]  # fallback


def test_positions_in_matches_index_get_indexer() -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(1)
    allowed = pd.Series([f"{i:08d}_000.png" for i in range(500)], dtype="string")
    values = pd.Series([*rng.choice(allowed.to_numpy(), 300).tolist(), "nope.png", ""], dtype="string")
    expected = pd.Index(allowed.astype(object)).get_indexer(values.astype(object))
    assert tables.positions_in(values, allowed).tolist() == expected.tolist()


def test_human_readers_are_those_who_only_mark() -> None:
    """A model that once gives a probability of exactly 1.0 is still a model: the rule is per reader."""
    from cxrlab.tables import human_readers

    findings = pd.DataFrame(
        {
            "image_id": ["a", "a", "a", "b", "b"],
            "reader": ["R1", "consensus", "model", "R2", "model"],
            "score": [1.0, 1.0, 1.0, 1.0, 0.3],
        }
    )
    assert human_readers(findings) == ["R1", "R2"]


def test_a_split_no_image_has_is_a_parameter_error_listing_the_splits() -> None:
    from cxrlab.errors import ParameterError
    from cxrlab.tables import images_of_split

    images = pd.DataFrame({"image_id": ["a", "b", "c"], "split": ["train", "test", None]})
    assert images_of_split(images, None) is images
    assert images_of_split(images, "test")["image_id"].tolist() == ["b"]
    with pytest.raises(
        ParameterError, match=r"^split 'val' is the split of no image in t \(splits: test, train\)"
    ):
        images_of_split(images, "val", where="t")
