"""SED-ML and COMBINE archives: run them (:func:`run_sedml`) and write them (:func:`to_omex`)."""

from .run import run_sedml

__all__ = ["run_sedml"]
