"""Display renditions against the imaging pipeline run by hand, and the pyramid levels against OpenCV."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom

from cxrlab.annotate import Database
from cxrlab.annotate.renditions import SCREEN, ImageRef, RenditionCache, pyramid
from cxrlab.imaging.dicom import DisplayOptions, display_reference


def test_rendition_equals_the_step_by_step_pipeline(vindr_phantom: Path, tmp_path: Path) -> None:
    cache = RenditionCache(tmp_path)
    for i, path in enumerate(sorted(vindr_phantom.rglob("*.dicom"))[:6]):
        png, _ = cache.ensure(ImageRef(i, 1, "dicom", str(path)))
        got = cv2.imdecode(np.fromfile(png, np.uint8), cv2.IMREAD_UNCHANGED)
        ds = pydicom.dcmread(path)
        lut = "VOILUTSequence" in ds
        want, _ = display_reference(
            ds.pixel_array, ds, DisplayOptions(bits=16, voi="auto" if lut else "none")
        )
        assert np.array_equal(got, want), path.name
    cache.close()


def test_pyramid_halves_down_to_screen_size() -> None:
    img = np.random.default_rng(0).integers(0, 65535, (2600, 2100), dtype=np.uint16)
    levels = pyramid(img)
    assert [lv.shape for lv in levels] == [(2600, 2100), (1300, 1050), (650, 525)]
    assert max(levels[-2].shape) > SCREEN >= max(levels[-1].shape)
    ref = cv2.resize(img, (1050, 1300), interpolation=cv2.INTER_AREA)
    assert np.array_equal(levels[1], ref) and levels[1].dtype == np.uint16


def test_renditions_of_the_next_images_are_made_ahead(sqlite_db: Database, vindr_phantom: Path) -> None:
    """An import told to make no display data makes none; asking for the queue starts the next images' in
    the background."""
    import time

    from tests.annotate.conftest import Api, add_users

    from cxrlab.annotate import create_app

    add_users(sqlite_db, {"boss": "admin", "r1": "radiologist"})
    app = create_app(sqlite_db)
    boss = Api(app).login("boss")
    pid = boss.post("/api/projects", {"name": "p", "labels": "vindr", "readers": 1}).json()["id"]
    boss.post(f"/api/projects/{pid}/members", {"user": "r1"})
    boss.import_source(pid, {"source": str(vindr_phantom), "renditions": False})
    assert not list(sqlite_db.cache_dir.rglob("*.json"))
    queue = Api(app).login("r1").get(f"/api/projects/{pid}/queue").json()
    wanted = {f"{t['image_id']}.json" for t in queue["tasks"][:3]}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not wanted <= {p.name for p in sqlite_db.cache_dir.rglob("*.json")}:
        time.sleep(0.2)
    assert wanted <= {p.name for p in sqlite_db.cache_dir.rglob("*.json")}
    assert len(list(sqlite_db.cache_dir.rglob("*.json"))) == 3  # the next three, not the whole queue
