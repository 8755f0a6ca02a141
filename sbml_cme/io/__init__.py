"""SBML in and out: the only package that imports libsbml."""

from .sbml_reader import SUBSTANCE_UNITS, read_sbml, read_sbml_string

__all__ = ["read_sbml", "read_sbml_string", "SUBSTANCE_UNITS"]
