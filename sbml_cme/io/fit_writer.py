"""Write a fitted model: the source SBML with the fitted parameter values set and their
uncertainty as ``sbmlcme:fit`` annotations (docs/inference.md)."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import libsbml
import pandas as pd

from ..errors import OptionsError, SBMLError
from ..network import Network
from .sbml_reader import read_sbml_string
from .sbml_writer import _annotate, _node, _parse, _setting, read_options_dict


def write_fitted_sbml(network: Network, estimates: pd.DataFrame, path: str | os.PathLike,
                      *, loglik: float | None = None, run_info: dict | None = None) -> Path:
    """Set each fitted parameter (``estimates``: ``parameter, estimate, standard_error,
    ci_low, ci_high``) in ``network``'s source SBML and annotate it with
    ``<sbmlcme:fit estimate= standardError= ciLow= ciHigh=/>``; the model element gets
    ``<sbmlcme:fitRun loglik=...>`` with the run settings. A local parameter
    ``reaction.parameter`` is set in its kinetic law. The written document is read back
    and must give the fitted values (else SBMLError)."""
    if not network.source_sbml:
        raise OptionsError("fit.to_sbml needs a network read from SBML (read_sbml); this "
                           "one was built in Python")
    document = _parse(network.source_sbml)
    model = document.getModel()
    for _, row in estimates.iterrows():
        pid = str(row["parameter"])
        element = model.getParameter(pid)
        if element is None and "." in pid:
            reaction_id, local_id = pid.split(".", 1)
            reaction = model.getReaction(reaction_id)
            law = reaction.getKineticLaw() if reaction is not None else None
            element = None if law is None else (law.getLocalParameter(local_id) or
                                                law.getParameter(local_id))
        if element is None:
            raise OptionsError(f"fitted parameter '{pid}' is not a parameter of the SBML "
                               "document")
        if model.getInitialAssignment(pid) is not None or model.getRule(pid) is not None:
            raise OptionsError(f"parameter '{pid}' is set by an initial assignment or "
                               "rule in the SBML; its fitted value cannot be written")
        element.setValue(float(row["estimate"]))
        _annotate(element, _node("fit", {
            "estimate": float(row["estimate"]),
            "standardError": float(row["standard_error"]),
            "ciLow": float(row["ci_low"]), "ciHigh": float(row["ci_high"])}, top=True))
    from .. import __version__

    date = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    settings = [_setting(k, v) for k, v in sorted((run_info or {}).items())
                if isinstance(v, (str, bool, int, float)) or v is None]
    _annotate(model, _node("fitRun", {"loglik": loglik, "packageVersion": __version__,
                                      "date": date}, settings, top=True))
    text = libsbml.writeSBMLToString(document)
    reread = read_sbml_string(text, **read_options_dict(network))
    values = dict(zip(reread.parameter_ids, reread.parameter_values))
    for _, row in estimates.iterrows():
        if abs(values.get(str(row["parameter"]), float("nan")) - float(row["estimate"])) > \
                1e-12 * abs(float(row["estimate"])):
            raise SBMLError(f"the written SBML reads back with another value of "
                            f"'{row['parameter']}' (please report it)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
