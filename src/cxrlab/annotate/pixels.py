"""The display data as the viewer reads it: the 16-bit rendition's rows as little-endian uint16, stored once
beside the cached PNG and then served as a plain file.

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
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from cxrlab.annotate import workflow
from cxrlab.annotate.app import caller, get_db
from cxrlab.annotate.models import User
from cxrlab.annotate.renditions import ImageRef, RenditionCache
from cxrlab.atomic import write_bytes_atomic

pixels_router = APIRouter(prefix="/api")
_lock = threading.Lock()


def raw_file(cache: RenditionCache, ref: ImageRef) -> tuple[Path, int, int]:
    """The rendition's ``.u16`` file (made from the PNG the first time), its width and height."""
    png, meta = cache.ensure(ref)
    path = png.with_suffix(".u16")
    width, height = int(meta["width"]), int(meta["height"])
    if not path.is_file() or path.stat().st_size != width * height * 2:
        with _lock:
            if not path.is_file() or path.stat().st_size != width * height * 2:
                img = cv2.imdecode(np.fromfile(png, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
                write_bytes_atomic(path, np.ascontiguousarray(img, dtype="<u2").tobytes())
    return path, width, height


@pixels_router.get("/images/{image_id}/pixels")
def pixels(
    image_id: int, request: Request, user: User = Depends(caller), db: Session = Depends(get_db)
) -> FileResponse:
    """Little-endian uint16 rows of the rendition; ``X-Width`` and ``X-Height`` give the shape."""
    image = workflow.image_for(db, user, image_id)
    ref = ImageRef(image.id, image.project_id, image.kind, image.source)
    db.close()  # the file is served without holding a database connection
    path, width, height = raw_file(request.app.state.cache, ref)
    headers = {"X-Width": str(width), "X-Height": str(height), "Cache-Control": "private, max-age=3600"}
    return FileResponse(path, media_type="application/octet-stream", headers=headers)
