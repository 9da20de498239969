"""The app for ``uvicorn --workers N`` (worker processes import it by name): its database and rendition
cache come from ``CXRLAB_DB`` and ``CXRLAB_ANNOTATE_CACHE``, set by ``cxrlab annotate serve``, which has
already applied the migrations before starting the workers."""

from __future__ import annotations

import os

from cxrlab.annotate.app import create_app
from cxrlab.annotate.db import Database

app = create_app(
    Database(os.environ.get("CXRLAB_DB"), cache_dir=os.environ.get("CXRLAB_ANNOTATE_CACHE") or None),
    secure_cookies=os.environ.get("CXRLAB_SECURE_COOKIES") == "1",
)
