import sbml_cme
from sbml_cme import errors


def test_all_names_exist_and_are_listed():
    for name in sbml_cme.__all__:
        assert hasattr(sbml_cme, name), name
    public = {n for n in dir(sbml_cme) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(sbml_cme.__all__) | {"annotations"}


def test_error_tree_matches_design():
    assert issubclass(errors.InvalidSBMLError, errors.SBMLError)
    assert issubclass(errors.UnsupportedFeatureError, errors.SBMLError)
    assert issubclass(errors.SBMLError, errors.SbmlCmeError)
    assert issubclass(errors.InvalidNetworkError, ValueError)
    assert issubclass(errors.OptionsError, ValueError)
    for cls in (errors.StateSpaceTooLargeError, errors.TruncationError,
                errors.ConvergenceError):
        assert issubclass(cls, errors.AnalysisError)


def test_exit_codes_are_stable():
    assert errors.exit_code_for(errors.OptionsError("x")) == 2
    assert errors.exit_code_for(errors.UnsupportedFeatureError("y", "z")) == 3
    assert errors.exit_code_for(errors.InvalidSBMLError("x")) == 3
    assert errors.exit_code_for(errors.ConvergenceError("x")) == 4


def test_unsupported_error_names_element_and_feature():
    error = errors.UnsupportedFeatureError("an algebraic rule", "rule1", analysis="simulate_ssa")
    assert error.feature == "an algebraic rule" and error.element_id == "rule1"
    assert "rule1" in str(error) and "simulate_ssa" in str(error)
