"""The display data as the viewer reads it: the 16-bit rendition's rows as little-endian uint16, stored once
beside the cached PNG and then served as a plain file, at full resolution (level 0) or halved (level 1).

A 2,500 px radiograph fitted on a screen shows fewer than half its pixels: the viewer opens level 1 (area
average of 2 x 2 pixels, a quarter of the bytes and of the windowing work) and fetches level 0 when the reader
zooms past it. Boxes stay in original pixels whatever the level.

The service's ``display?format=raw`` decodes the PNG on every request (about 0.1 s of CPU for a 2,500 px
image, per reader, per image); under 20 readers that decoding, not the network, limited the viewer. The
pixels and the access rule are the same: an image only through the caller's own assignment
(:func:`cxrlab.annotate.workflow.image_for`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from cxrlab.annotate import workflow
from cxrlab.annotate.app import as_caller, signed_in
from cxrlab.annotate.models import User
from cxrlab.annotate.renditions import ImageRef, RenditionCache
from cxrlab.atomic import write_bytes_atomic
from cxrlab.errors import CxrlabError

pixels_router = APIRouter(prefix="/api")
_lock = threading.Lock()


def level_size(width: int, height: int, level: int) -> tuple[int, int]:
    return (width, height) if level == 0 else ((width + 1) // 2, (height + 1) // 2)


def halve(img: np.ndarray) -> np.ndarray:
    """2 x 2 means, rounded (an odd last row or column repeated): exact blocks, where a resize to an odd
    size would spread them."""
    h, w = img.shape
    padded = np.pad(img, ((0, h % 2), (0, w % 2)), mode="edge").astype(np.uint32)
    sums = padded[0::2, 0::2] + padded[1::2, 0::2] + padded[0::2, 1::2] + padded[1::2, 1::2]
    return ((sums + 2) // 4).astype(np.uint16)


def raw_file(cache: RenditionCache, ref: ImageRef, level: int = 0) -> tuple[Path, int, int]:
    """The rendition's ``.u16`` file at ``level`` (made from the PNG the first time), its width and height."""
    png, meta = cache.ensure(ref)
    path = png.with_suffix(".u16" if level == 0 else f".l{level}.u16")
    width, height = level_size(int(meta["width"]), int(meta["height"]), level)
    if not path.is_file() or path.stat().st_size != width * height * 2:
        with _lock:
            if not path.is_file() or path.stat().st_size != width * height * 2:
                img = cv2.imdecode(np.fromfile(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
                if img is None:
                    raise CxrlabError(
                        f"{png}: the cached rendition is unreadable; delete it to have it remade"
                    )
                if level:
                    img = halve(img)
                write_bytes_atomic(path, np.ascontiguousarray(img, dtype="<u2").tobytes())
    return path, width, height


@pixels_router.get("/images/{image_id}/pixels", dependencies=[Depends(signed_in)])
async def pixels(image_id: int, request: Request, level: int = Query(0, ge=0, le=1)) -> FileResponse:
    """Little-endian uint16 rows of the rendition at ``level``; ``X-Width`` / ``X-Height`` give the shape."""

    def find(db: Session, user: User) -> tuple[Path, int, int]:
        image = workflow.image_for(db, user, image_id)
        ref = ImageRef(image.id, image.project_id, image.kind, image.source)
        db.close()  # the file is served without holding a database connection
        return raw_file(request.app.state.cache, ref, level)

    path, width, height = await as_caller(request, find, image_id=image_id)
    headers = {"X-Width": str(width), "X-Height": str(height), "Cache-Control": "private, max-age=3600"}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)


def make_ahead(cache: RenditionCache, ref: ImageRef) -> None:
    """Everything the viewer reads of an image, made now (after an import, in a process of its own): the
    rendition and its pyramid, and the raw rows at both levels; then a view only sends ready files."""
    cache.ensure(ref)
    for level in (0, 1):
        raw_file(cache, ref, level)
