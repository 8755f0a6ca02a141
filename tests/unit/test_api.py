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


# -- the public API the docs show --------------------------------------------------------
import ast  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: What a new user is told to import (issue 11, item 7).
ANALYSES = ("simulate_ssa", "solve_cme", "stationary_cme", "solve_lna", "simulate_cle",
            "simulate_deterministic", "analyze", "crosscheck", "tellurium_reference")


def _documented_names() -> dict[str, set[str]]:
    """Per Markdown file (README and docs/), the sbml_cme names its Python blocks use:
    imported from any sbml_cme module, or read as ``sbml_cme.NAME``."""
    found = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        names = set()
        for block in re.findall(r"```python\n(.*?)```", path.read_text(), re.S):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                        "sbml_cme"):
                    names |= {alias.name for alias in node.names}
                elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.value.id == "sbml_cme":
                    names.add(node.attr)
        if names:
            found[path.name] = names
    return found


def test_the_analyses_are_importable_from_the_package():
    namespace = {}
    exec(f"from sbml_cme import {', '.join(ANALYSES)}", namespace)
    assert all(callable(namespace[name]) for name in ANALYSES)
    assert set(ANALYSES) <= set(sbml_cme.__all__)


def test_every_name_the_docs_use_is_in_all():
    documented = _documented_names()
    assert set(ANALYSES) - {"tellurium_reference"} <= documented["README.md"]
    for page, names in documented.items():
        missing = names - set(sbml_cme.__all__)
        assert not missing, f"{page} uses {sorted(missing)}, which sbml_cme does not export"


def test_import_does_not_load_the_heavy_optional_packages():
    heavy = ("tellurium", "roadrunner", "matplotlib", "distributed", "tqdm")
    code = (f"import sys, sbml_cme; print([m for m in {heavy!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=ROOT).stdout.strip()
    assert loaded == "[]"
