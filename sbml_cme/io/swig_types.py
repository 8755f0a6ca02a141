"""libsbml calls that stay right once libsedml is imported.

libsedml bundles a copy of libsbml's SWIG types. Both modules share one SWIG type table,
so once libsedml is loaded (any SED-ML run) libsbml returns some objects through
libsedml's proxy classes: ``ASTNode.getType()`` becomes an opaque pointer instead of the
int, and ``getListOfAllElements()`` a list whose items no longer downcast (their
``getId()`` is empty). Calling libsbml's own wrapper functions avoids both.
"""

from __future__ import annotations

import libsbml


def ast_type(node) -> int:
    """The libsbml AST type code of ``node`` (an ``AST_*`` int)."""
    return libsbml._libsbml.ASTNode_getType(node)


def set_ast_type(node, kind: int) -> None:
    """``node.setType(kind)`` through libsbml's own wrapper."""
    libsbml._libsbml.ASTNode_setType(node, kind)


def all_elements(element) -> list:
    """``element.getListOfAllElements()`` as a list of properly typed libsbml objects."""
    elements = libsbml._libsbml.SBase_getListOfAllElements(element)
    return [libsbml._libsbml.SBaseList_get(elements, i)
            for i in range(libsbml._libsbml.SBaseList_getSize(elements))]
