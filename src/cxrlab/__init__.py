"""cxrlab: chest X-ray datasets with radiologist annotations, from archives to metrics."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__`` is looked up on first use: importlib.metadata costs ~20-50 ms at every start-up of
    every command, and only ``--version``, de-identification notes and reports print it."""
    if name != "__version__":
        raise AttributeError(f"module 'cxrlab' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("cxrlab")
    except PackageNotFoundError:  # running from a source tree without installation
        found = "0.0.0"
    globals()["__version__"] = found
    return found
