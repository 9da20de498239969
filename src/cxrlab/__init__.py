"""cxrlab: chest X-ray datasets with radiologist annotations, from archives to metrics."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cxrlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
