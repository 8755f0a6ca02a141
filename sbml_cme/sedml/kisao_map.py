"""KiSAO algorithm ids -> sbml_cme methods, read from the KiSAO ontology (``kisao`` package).

The families come from the ontology, not from a hand-typed table:

- exact Gillespie-like algorithms (``'Gillespie-like method' and 'has characteristic' some
  'exact solution'``: direct, first reaction, next reaction, ...) -> :func:`simulate_ssa`.
  They all sample the same law; ours is the direct or the tree (composition-rejection)
  method, recorded in the log.
- ODE algorithms (every term with the 'ordinary differential equation problem'
  characteristic: CVODE, LSODA, Runge-Kutta, ...) -> :func:`simulate_deterministic`
  (scipy's LSODA, or the scipy integrator of the same family where one exists).
- SDE solvers: Euler-Maruyama (KISAO_0000286) -> :func:`simulate_cle` ``method="euler"``;
  other SDE solvers have no counterpart.
- Pahle's hybrid method and its children (KISAO_0000231, exact jump / ODE partition) ->
  :func:`simulate_hybrid`.
- steady-state root finders (KISAO_0000407 family) -> the rate-equation steady state.

KiSAO (2.34) has no term for finite state projection, the CME or the linear noise
approximation. Archives written by sbml_cme carry these as the ontology's root
(KISAO_0000000, "modelling and simulation algorithm") with an ``sbml_cme`` annotation
naming the method; other tools see an unspecific algorithm and refuse it.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

from ..errors import OptionsError, UnsupportedAlgorithmError

#: The root term, used with an sbml_cme annotation for methods KiSAO has no term for.
KISAO_ROOT = "KISAO_0000000"
GILLESPIE_DIRECT = "KISAO_0000029"
LSODA = "KISAO_0000088"
EULER_MARUYAMA = "KISAO_0000286"
PAHLE_HYBRID = "KISAO_0000231"
NEWTON = "KISAO_0000409"

#: Algorithm parameters read from SED-ML (KiSAO ids).
SEED = "KISAO_0000488"
NUMBER_OF_RUNS = "KISAO_0000498"
RELATIVE_TOLERANCE = "KISAO_0000209"
ABSOLUTE_TOLERANCE = "KISAO_0000211"
#: The time symbol of SED-ML L1V4 (``urn:sedml:symbol:time`` before).
TIME = "KISAO_0000832"

#: Aggregation functions (children of KISAO_0000824) we evaluate, by numpy reduction.
AGGREGATES = {
    "KISAO_0000841": "mean", "KISAO_0000825": "nanmean",
    "KISAO_0000842": "std", "KISAO_0000826": "nanstd",
    "KISAO_0000859": "var", "KISAO_0000858": "nanvar",
    "KISAO_0000840": "min", "KISAO_0000829": "nanmin",
    "KISAO_0000830": "max", "KISAO_0000828": "nanmax",
    "KISAO_0000845": "sum", "KISAO_0000844": "nansum",
    "KISAO_0000847": "prod", "KISAO_0000846": "nanprod",
    "KISAO_0000843": "sem", "KISAO_0000827": "nansem",
    "KISAO_0000857": "median", "KISAO_0000856": "nanmedian",
    "KISAO_0000853": "count", "KISAO_0000855": "count",
}

#: scipy integrator for the ODE terms that name one; other ODE terms use LSODA.
_SCIPY_INTEGRATORS = {"KISAO_0000088": "LSODA", "KISAO_0000560": "LSODA",
                      "KISAO_0000288": "BDF", "KISAO_0000019": "BDF",
                      "KISAO_0000304": "Radau", "KISAO_0000087": "RK45",
                      "KISAO_0000436": "DOP853"}


def _unsupported(kisao_id: str, nearest: str | None, policy: str | None,
                 where: str) -> UnsupportedAlgorithmError:
    near = (f"; the nearest algorithm sbml_cme runs is {nearest} ({term_name(nearest)}): "
            f"change the SED-ML algorithm to it, or accept KiSAO's substitution at "
            f"substitution_policy='{policy}' (CLI --substitution-policy {policy})"
            ) if nearest else ""
    return UnsupportedAlgorithmError(
        f"sbml_cme does not implement algorithm {kisao_id} ({term_name(kisao_id)})"
        f"{' in ' + where if where else ''}{near}.", kisao_id, nearest, policy)


@dataclass(frozen=True)
class Method:
    """What a KiSAO id runs: ``analysis`` is ``ssa``, ``ode``, ``cle``, ``hybrid``,
    ``steady_state``, ``cme`` or ``lna``; ``options`` are keyword arguments for it."""

    kisao_id: str
    analysis: str
    options: tuple = ()
    substituted_from: str | None = None


def normalize(kisao_id: str) -> str:
    """``KISAO:0000029`` or ``KISAO_0000029`` -> ``KISAO_0000029``."""
    return kisao_id.strip().replace(":", "_")


@functools.lru_cache(maxsize=None)
def _ontology():
    from kisao import Kisao
    import kisao.utils as utils

    return Kisao(), utils


def _ids(terms) -> frozenset[str]:
    return frozenset(term.id.rpartition("#")[2] for term in terms)


@functools.lru_cache(maxsize=None)
def families() -> dict[str, frozenset[str]]:
    """KiSAO ids of each analysis, from the ontology."""
    kisao, utils = _ontology()
    return {
        "ssa": _ids(utils.get_gillespie_like_algorithms(exact=True, approximate=False)),
        "ode": _ids(utils.get_ode_algorithms()),
        "cle": frozenset({EULER_MARUYAMA}),
        "hybrid": _ids(kisao.get_term(PAHLE_HYBRID).subclasses()),
        "steady_state": _ids(utils.get_steadystate_algorithms()),
    }


def term_name(kisao_id: str | None) -> str:
    """The KiSAO term's name ('unknown term' when the ontology has none)."""
    if not kisao_id:
        return ""
    try:
        return _ontology()[0].get_term(normalize(kisao_id)).name
    except Exception:  # noqa: BLE001 - an unknown id in a user file
        return "unknown KiSAO term"


def supported_ids() -> list[str]:
    """Every KiSAO id sbml_cme runs without substitution."""
    return sorted(set().union(*families().values()))


def method_for(kisao_id: str, *, steady_state: bool = False,
               substitution_policy: str | None = None, annotation: str | None = None,
               where: str = "") -> Method:
    """The sbml_cme method for ``kisao_id``.

    Parameters
    ----------
    steady_state : bool
        The algorithm belongs to a SED-ML ``steadyState`` simulation.
    substitution_policy : str, optional
        A KiSAO ``AlgorithmSubstitutionPolicy`` name (``SAME_MATH``,
        ``SIMILAR_APPROXIMATIONS``, ...): an algorithm we do not implement is replaced by
        the one KiSAO prefers at that policy. Default: no substitution (an error).
    annotation : str, optional
        The method named by an sbml_cme annotation (``cme``, ``lna``).

    Raises
    ------
    UnsupportedAlgorithmError
        Naming the id and the nearest algorithm we implement.
    """
    kisao_id = normalize(kisao_id)
    if annotation in ("cme", "lna", "ssa", "ode", "hybrid", "cle"):
        return Method(kisao_id, annotation)
    for analysis, ids in families().items():
        if kisao_id in ids and (analysis == "steady_state") == steady_state:
            return Method(kisao_id, analysis, _options(analysis, kisao_id))
    if steady_state and kisao_id in families()["ode"]:
        # A steady state asked of an ODE integrator: the rate-equation steady state.
        return Method(kisao_id, "steady_state")
    candidates = [NEWTON] if steady_state else [GILLESPIE_DIRECT, LSODA, EULER_MARUYAMA,
                                                 PAHLE_HYBRID]
    nearest, policy = _nearest(kisao_id, candidates)
    if substitution_policy:
        chosen = _substitute(kisao_id, candidates, substitution_policy)
        if chosen:
            method = method_for(chosen, steady_state=steady_state)
            return Method(method.kisao_id, method.analysis, method.options,
                          substituted_from=kisao_id)
    raise _unsupported(kisao_id, nearest, policy, where)


def _options(analysis: str, kisao_id: str) -> tuple:
    if analysis == "ode":
        return (("method", _SCIPY_INTEGRATORS.get(kisao_id, "LSODA")),)
    if analysis == "cle":
        return (("method", "euler"),)
    return ()


def _nearest(kisao_id: str, candidates: list[str]) -> tuple[str | None, str | None]:
    """(KiSAO's preferred substitute, the least permissive policy that allows it)."""
    _, utils = _ontology()
    for policy in list(utils.ALGORITHM_SUBSTITUTION_POLICY_LEVELS)[2:]:
        chosen = _substitute(kisao_id, candidates, policy.name)
        if chosen:
            return chosen, policy.name
    return None, None


def _substitute(kisao_id: str, candidates: list[str], policy: str) -> str | None:
    """KiSAO's preferred substitute among ``candidates`` at ``policy`` (None if none)."""
    _, utils = _ontology()
    try:
        policy_value = utils.AlgorithmSubstitutionPolicy[policy]
    except KeyError:
        raise OptionsError(f"unknown KiSAO substitution policy {policy!r}; choose from "
                           f"{[p.name for p in utils.AlgorithmSubstitutionPolicy]}") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return utils.get_preferred_substitute_algorithm_by_ids(
                kisao_id, candidates, substitution_policy=policy_value)
    except Exception:  # noqa: BLE001 - kisao raises its own exception types, or ValueError
        return None
