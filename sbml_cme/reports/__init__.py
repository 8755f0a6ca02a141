"""Reports: tables, files and the analyze() driver (the only place matplotlib may be used)."""

from .analyze import Report, analyze

__all__ = ["Report", "analyze"]
