"""The reading service: blind multi-reader projects, adjudication, export to the two tables (FastAPI)."""

from cxrlab.annotate.app import create_app
from cxrlab.annotate.db import Database, resolve_url

__all__ = ["Database", "create_app", "resolve_url"]
