"""sbml_cme: exact stochastic analyses of SBML models, in molecule counts."""

__version__ = "0.1.0"

from .errors import (AnalysisError, ConvergenceError, InvalidNetworkError, InvalidSBMLError,
                     OptionsError, SBMLError, SbmlCmeError, StateSpaceTooLargeError,
                     TruncationError, UnsupportedFeatureError)
from .io import read_sbml, read_sbml_string, write_annotated_sbml
from .network import (Compartment, Event, Expression, MassAction, Network, Output, Parameter,
                      Reaction, Species)

__all__ = [
    "__version__",
    "read_sbml", "read_sbml_string", "write_annotated_sbml",
    "Network", "Species", "Reaction", "Parameter", "Compartment", "Output", "Event",
    "MassAction", "Expression",
    "SbmlCmeError", "SBMLError", "InvalidSBMLError", "UnsupportedFeatureError",
    "InvalidNetworkError", "OptionsError", "AnalysisError", "StateSpaceTooLargeError",
    "TruncationError", "ConvergenceError",
]
