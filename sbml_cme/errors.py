"""The whole exception tree of sbml_cme.

::

    SbmlCmeError
    ├── SBMLError
    │   ├── InvalidSBMLError          libsbml reported errors (kept in .errors)
    │   └── UnsupportedFeatureError   .feature, .element_id, .analysis
    ├── InvalidNetworkError(ValueError)
    ├── OptionsError(ValueError)
    ├── SedmlError                    a SED-ML document or COMBINE archive we cannot run
    │   └── UnsupportedAlgorithmError .kisao_id, .nearest (the closest algorithm we run)
    └── AnalysisError
        ├── StateSpaceTooLargeError
        ├── WorkLimitError            the estimated work exceeds the limit (says the option)
        ├── TruncationError
        ├── ConvergenceError
        └── NotComplexBalancedError   no product-form stationary law

Every message says what went wrong, where (the SBML element id when there is one) and
what to do about it. The CLI maps each family to a stable exit code (see ``EXIT_CODES``).
"""

from __future__ import annotations


class SbmlCmeError(Exception):
    """Base class of every error raised on purpose by sbml_cme."""


class SBMLError(SbmlCmeError):
    """The SBML document cannot be turned into a stochastic network."""


class InvalidSBMLError(SBMLError):
    """libsbml could not read the document or reported errors in it.

    Attributes
    ----------
    errors : list of str
        libsbml's messages, one per error.
    """

    def __init__(self, message: str, errors: list[str] | None = None):
        self.errors = list(errors or [])
        if self.errors:
            shown = "\n  ".join(self.errors[:10])
            more = f"\n  ... and {len(self.errors) - 10} more" if len(self.errors) > 10 else ""
            message = f"{message}\n  {shown}{more}"
        super().__init__(message)


class UnsupportedFeatureError(SBMLError):
    """A construct the requested analysis cannot express exactly.

    Attributes
    ----------
    feature : str
        The construct, e.g. ``"algebraic rule"``.
    element_id : str or None
        Id of the SBML element that uses it.
    analysis : str or None
        The analysis that refuses it (``None`` when the importer itself refuses it).
    """

    def __init__(self, feature: str, element_id: str | None = None, *,
                 analysis: str | None = None, hint: str = ""):
        self.feature = feature
        self.element_id = element_id
        self.analysis = analysis
        where = f" in SBML element '{element_id}'" if element_id else ""
        who = f"{analysis} does not support" if analysis else "sbml_cme cannot import"
        message = f"{who} {feature}{where}."
        if hint:
            message += f" {hint}"
        super().__init__(message)


class InvalidNetworkError(SbmlCmeError, ValueError):
    """A network that is inconsistent (unknown species, negative counts, ...)."""


class OptionsError(SbmlCmeError, ValueError):
    """An option value that is impossible or inconsistent."""


class SedmlError(SbmlCmeError):
    """A SED-ML document or COMBINE archive that is invalid or asks for something
    sbml_cme cannot do (the message names the SED-ML element)."""


class UnsupportedAlgorithmError(SedmlError):
    """A SED-ML algorithm (KiSAO id) that no sbml_cme method honours.

    Attributes
    ----------
    kisao_id : str
    nearest : str or None
        The closest algorithm sbml_cme runs, by KiSAO's own substitution rules.
    policy : str or None
        The least permissive KiSAO substitution policy that allows ``nearest``.
    """

    def __init__(self, message: str, kisao_id: str, nearest: str | None = None,
                 policy: str | None = None):
        self.kisao_id, self.nearest, self.policy = kisao_id, nearest, policy
        super().__init__(message)


class AnalysisError(SbmlCmeError):
    """An analysis could not produce a trustworthy answer."""


class StateSpaceTooLargeError(AnalysisError):
    """The state space would not fit in memory. ``partial``: when a stationary FSP had
    already solved a smaller window before its growth was refused, that round's
    :class:`~sbml_cme.analyses.cme.CMEResult` (its certificate above ``tol``), else None."""

    partial = None


class WorkLimitError(AnalysisError):
    """The estimated work (reaction events, integration steps, memory) exceeds the limit;
    the message gives the estimate and the option that raises the limit."""


class TruncationError(AnalysisError):
    """A truncated solution would exceed the requested error bound."""


class ConvergenceError(AnalysisError):
    """An iterative method or integrator did not converge."""


class NotComplexBalancedError(AnalysisError):
    """The network has no complex-balanced equilibrium, so no product-form stationary
    law (Anderson, Craciun and Kurtz 2010); the message says why."""


#: Stable CLI exit codes per error family (0 success, 1 failed check).
EXIT_CODES = {
    OptionsError: 2,
    SBMLError: 3,
    InvalidNetworkError: 3,
    SedmlError: 3,
    AnalysisError: 4,
}


def exit_code_for(error: BaseException) -> int:
    """Return the CLI exit code for ``error`` (4 for an unexpected SbmlCmeError)."""
    for family, code in EXIT_CODES.items():
        if isinstance(error, family):
            return code
    return 4
