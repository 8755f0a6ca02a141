"""sbml_cme: exact stochastic analyses of SBML models, in molecule counts."""

__version__ = "0.1.0"

from .errors import (AnalysisError, ConvergenceError, InvalidNetworkError, InvalidSBMLError,
                     NotComplexBalancedError, OptionsError, SBMLError, SbmlCmeError,
                     StateSpaceTooLargeError, TruncationError, UnsupportedFeatureError,
                     WorkLimitError)
from .io import read_sbml, read_sbml_string, write_annotated_sbml, write_sbml
from .network import (Burst, Compartment, Event, Expression, MassAction, Network, Output,
                      Parameter, Reaction, Species)
from .delays import with_delay
from .analyses.noise import ExtrinsicNoiseResult, NoiseSummary, extrinsic_noise, noise_summary
from .analyses.structure import StructureResult, analyze_structure, product_form_stationary

__all__ = [
    "__version__",
    "read_sbml", "read_sbml_string", "write_annotated_sbml", "write_sbml", "with_delay",
    "Network", "Species", "Reaction", "Parameter", "Compartment", "Output", "Event",
    "MassAction", "Expression", "Burst",
    "SbmlCmeError", "SBMLError", "InvalidSBMLError", "UnsupportedFeatureError",
    "InvalidNetworkError", "OptionsError", "AnalysisError", "StateSpaceTooLargeError",
    "TruncationError", "ConvergenceError", "NotComplexBalancedError", "WorkLimitError",
    "analyze_structure", "product_form_stationary", "StructureResult",
    "noise_summary", "extrinsic_noise", "NoiseSummary", "ExtrinsicNoiseResult",
]
