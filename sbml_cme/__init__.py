"""sbml_cme: exact stochastic analyses of SBML models, in molecule counts.

Everything a user calls is importable from here (``__all__``): read a model, run any
analysis, compare with tellurium, or let :func:`analyze` do all of it. tellurium,
libroadrunner and matplotlib are imported only when a function needs them.
"""

__version__ = "0.1.0"

from .errors import (AnalysisError, ConvergenceError, InvalidNetworkError, InvalidSBMLError,
                     NotComplexBalancedError, OptionsError, SBMLError, SbmlCmeError,
                     SedmlError, StateSpaceTooLargeError, TruncationError,
                     UnsupportedAlgorithmError, UnsupportedFeatureError, WorkLimitError)
from .io import read_annotations, read_sbml, read_sbml_string, write_annotated_sbml, write_sbml
from .network import (Burst, Compartment, Event, Expression, MassAction, Network, Output,
                      Parameter, Reaction, Species)
from .delays import with_delay
from .analyses import (simulate_cle, simulate_deterministic, simulate_ssa, solve_cme,
                       solve_lna, stationary_cme)
from .analyses.horizon import Horizon, choose_horizon
from .analyses.hybrid import auto_partition, simulate_hybrid
from .analyses.noise import ExtrinsicNoiseResult, NoiseSummary, extrinsic_noise, noise_summary
from .analyses.inference import (BinomialCapture, DistortionMatrix, GaussianNoise,
                                 LikelihoodResult, fisher_information, fsp_log_likelihood)
from .analyses.fit import (DesignResult, FitResult, PosteriorResult, design_experiment,
                           fit_cme)
from .analyses.structure import StructureResult, analyze_structure, product_form_stationary
from .crosscheck import crosscheck, tellurium_reference
from .reports import Report, analyze
from .sedml import run_sedml

__all__ = [
    "__version__",
    "read_sbml", "read_sbml_string", "write_annotated_sbml", "read_annotations", "write_sbml",
    "with_delay",
    "Network", "Species", "Reaction", "Parameter", "Compartment", "Output", "Event",
    "MassAction", "Expression", "Burst",
    "SbmlCmeError", "SBMLError", "InvalidSBMLError", "UnsupportedFeatureError",
    "InvalidNetworkError", "OptionsError", "AnalysisError", "StateSpaceTooLargeError",
    "TruncationError", "ConvergenceError", "NotComplexBalancedError", "WorkLimitError",
    "SedmlError", "UnsupportedAlgorithmError",
    "simulate_ssa", "simulate_hybrid", "auto_partition", "solve_cme", "stationary_cme", "solve_lna", "simulate_cle",
    "simulate_deterministic", "choose_horizon", "Horizon",
    "analyze", "Report", "crosscheck", "tellurium_reference", "run_sedml",
    "analyze_structure", "product_form_stationary", "StructureResult",
    "noise_summary", "extrinsic_noise", "NoiseSummary", "ExtrinsicNoiseResult",
    "fsp_log_likelihood", "fisher_information", "fit_cme", "design_experiment",
    "FitResult", "PosteriorResult", "DesignResult", "LikelihoodResult",
    "BinomialCapture", "GaussianNoise", "DistortionMatrix",
]
