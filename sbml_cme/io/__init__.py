"""SBML in and out: the only package that imports libsbml."""

from .sbml_reader import SUBSTANCE_UNITS, read_sbml, read_sbml_string
from .sbml_writer import read_annotations, write_annotated_sbml, write_sbml

__all__ = ["read_sbml", "read_sbml_string", "SUBSTANCE_UNITS", "write_annotated_sbml",
           "read_annotations", "write_sbml"]
