"""SBML in and out: the only package that imports libsbml."""

try:
    # libsedml bundles its own copy of libsbml's SWIG types: imported after libsbml it
    # turns libsbml's AST node types into opaque pointers (ASTNode.getType() no longer
    # an int) and every MathML conversion fails. Imported first, both work.
    import libsedml  # noqa: F401
except ImportError:  # pragma: no cover - libsedml is needed only for SED-ML
    pass

from .sbml_reader import SUBSTANCE_UNITS, read_sbml, read_sbml_string
from .sbml_writer import read_annotations, write_annotated_sbml, write_sbml

__all__ = ["read_sbml", "read_sbml_string", "SUBSTANCE_UNITS", "write_annotated_sbml",
           "read_annotations", "write_sbml"]
