"""Annotated SBML (issue 6, item 3): the output keeps the original document intact,
validates, simulates the same in libroadrunner, re-imports to an equal network, and its
sbml_cme annotations read back."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import xml.etree.ElementTree as ET

import libsbml
import numpy as np
import pytest

from sbml_cme import (Network, OptionsError, Reaction, Species, read_sbml, read_sbml_string,
                      write_annotated_sbml, write_sbml)
from sbml_cme.analyses import simulate_deterministic, simulate_ssa, solve_cme
from sbml_cme.io.swig_types import all_elements
from sbml_cme.io.sbml_writer import (NAMESPACE, last_time_statistics, read_annotations,
                                     read_options_dict)
from sbml_cme.network import MassAction

from conftest import make_sbml
from test_biomodels_crosscheck import ROWS, _options  # the index's read_options parser

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODELS = ROOT / "models" / "biomodels"
DSMTS = ROOT / "tests" / "data" / "dsmts" / "00030" / "00030-sbml-l3v1.xml"
INDEX = {row["id"]: row for row in ROWS}

#: (file, run the SSA too?) -- L2V1/L2V3/L2V4/L3V1; events; assignment rules; initial
#: assignments; RDF/MIRIAM, COPASI and notes; attributes libsbml drops (charge).
CASES = {
    "BIOMD0000000012": True,   # L2V3, assignment rules, general laws, RDF
    "BIOMD0000000483": True,   # L2V4, substance_unit=item, charge attributes, RDF
    "BIOMD0000000539": True,   # L3V1, substance_unit=item, COPASI + RDF annotations
    "BIOMD0000000001": False,  # L2V4, events, notes everywhere, RDF
    "BIOMD0000000188": False,  # L2V4, assignment rules and events
    "BIOMD0000000546": False,  # L2V4, initial assignments, species types
    "dsmts-00030": True,       # L3V1, no annotations at all
}
TIMES = np.linspace(0.0, 10.0, 11)


def _source(name: str) -> tuple[pathlib.Path, dict]:
    if name.startswith("dsmts"):
        return DSMTS, {}
    assert INDEX[name]["sbml_cme_status"] == "ok"
    return MODELS / f"{name}.xml", _options(INDEX[name]["read_options"])


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    name = request.param
    original, options = _source(name)
    network = read_sbml(original, **options)
    results = [simulate_deterministic(network, TIMES)]
    if CASES[name]:
        results.append(simulate_ssa(network, TIMES, n_trajectories=50, seed=1))
    output = write_annotated_sbml(network, results,
                                  tmp_path_factory.mktemp(name) / f"{name}.xml")
    return {"name": name, "original": original, "options": options, "network": network,
            "results": results, "output": output}


# -- validity --------------------------------------------------------------------------------
def _errors(document: libsbml.SBMLDocument) -> list[str]:
    return [document.getError(i).getMessage() for i in range(document.getNumErrors())
            if document.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]


def test_output_reads_without_errors_and_adds_no_consistency_errors(case):
    original = libsbml.readSBML(str(case["original"]))
    output = libsbml.readSBML(str(case["output"]))
    assert _errors(output) == []
    original.checkConsistency()
    output.checkConsistency()
    assert len(_errors(output)) <= len(_errors(original)), _errors(output)


def test_roadrunner_simulates_output_like_original(case):
    roadrunner = pytest.importorskip("roadrunner")

    def simulate(path):
        runner = roadrunner.RoadRunner(str(path))
        runner.integrator.relative_tolerance = 1e-10
        runner.integrator.absolute_tolerance = 1e-14
        result = runner.simulate(0.0, 10.0, 21)
        return list(result.colnames), np.array(result)

    names_original, original = simulate(case["original"])
    names_output, output = simulate(case["output"])
    assert names_output == names_original
    np.testing.assert_allclose(output, original, rtol=1e-12, atol=0.0)


def test_output_reads_back_into_an_equal_network(case):
    network = read_sbml(case["output"], **case["options"])
    assert network == case["network"]
    assert network.read_options == case["network"].read_options
    # ... and with the read options recorded in the file itself.
    recorded = read_annotations(case["output"])["model"]["read_options"]
    assert recorded == read_options_dict(case["network"])
    assert read_sbml(case["output"], **recorded) == case["network"]


# -- the original document is kept --------------------------------------------------------
def _strip_ours(root: ET.Element) -> ET.Element:
    """Remove sbml_cme annotations, and annotation elements they alone filled."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag.endswith("}annotation"):
                ours = [c for c in child if c.tag.startswith("{" + NAMESPACE + "}")]
                for c in ours:
                    child.remove(c)
                if ours and len(child) == 0:
                    parent.remove(child)
    return root


def _canonical(element: ET.Element) -> tuple:
    return (element.tag, tuple(sorted(element.attrib.items())), (element.text or "").strip(),
            (element.tail or "").strip(), tuple(_canonical(c) for c in element))


def _same_value(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return float(a) == float(b)  # libsbml rewrites 1E-16 as 1e-16
    except ValueError:
        return False


def _by_key(root: ET.Element) -> dict:
    return {(e.tag, key, e.attrib[key]): e for e in root.iter()
            for key in ("id", "metaid") if key in e.attrib}


def test_output_is_the_libsbml_rewrite_of_the_original_plus_annotations(case):
    """Nothing but our annotations differs from libsbml's own rewrite of the source."""
    plain = libsbml.writeSBMLToString(libsbml.readSBML(str(case["original"])))
    output = _strip_ours(ET.parse(case["output"]).getroot())
    assert _canonical(output) == _canonical(ET.fromstring(plain.encode()))


def test_every_original_element_annotation_and_note_is_kept(case):
    original = ET.parse(case["original"]).getroot()
    output = _by_key(ET.parse(case["output"]).getroot())
    # Attributes that libsbml itself drops on reading (not valid in the document's
    # level/version, e.g. 'charge' on L2V4 species) are the only allowed loss.
    plain = _by_key(ET.fromstring(libsbml.writeSBMLToString(
        libsbml.readSBML(str(case["original"]))).encode()))
    for key, element in _by_key(original).items():
        assert key in output, f"{key} missing"
        kept = output[key]
        for name, value in element.attrib.items():
            if name not in plain[key].attrib:
                continue
            assert _same_value(value, kept.attrib.get(name, "")), (key, name)
        for kind in ("annotation", "notes"):
            old = [c for c in element if c.tag.endswith("}" + kind)]
            new = [c for c in kept if c.tag.endswith("}" + kind)]
            if not old:
                continue
            assert len(new) == 1, (key, kind)
            new_children = [_canonical(c) for c in new[0]]
            for child in old[0]:
                assert _canonical(child) in new_children, (key, kind, child.tag)


def test_rdf_annotations_still_parse(case):
    original = libsbml.readSBML(str(case["original"])).getModel()
    output = libsbml.readSBML(str(case["output"])).getModel()
    for element in all_elements(original):
        if not element.getId() or element.getNumCVTerms() == 0:
            continue
        kept = output.getElementBySId(element.getId())
        assert kept.getNumCVTerms() == element.getNumCVTerms()
        for i in range(element.getNumCVTerms()):
            old, new = element.getCVTerm(i), kept.getCVTerm(i)
            assert [old.getResourceURI(k) for k in range(old.getNumResources())] == \
                [new.getResourceURI(k) for k in range(new.getNumResources())]
    if original.isSetModelHistory():
        old, new = original.getModelHistory(), output.getModelHistory()
        assert new.getNumCreators() == old.getNumCreators()


# -- the annotations ---------------------------------------------------------------------------
def test_reaction_annotations_match_the_conversion_table(case):
    annotations = read_annotations(case["output"])
    table = case["network"].conversion_table()
    channels = {c["id"]: (sbml_id, c) for sbml_id, cs in annotations["reactions"].items()
                for c in cs}
    assert set(channels) == set(table.reaction)
    for row in table.itertuples():
        sbml_id, channel = channels[row.reaction]
        assert sbml_id == row.sbml_reaction
        assert channel["form"] == row.form
        assert channel["propensity"] == row.propensity
        assert channel["molecules_per_unit"] == row.molecules_per_unit
        for key in ("stochastic_constant", "macroscopic_constant", "volume_factor"):
            expected = getattr(row, key)
            if expected is None or (isinstance(expected, float) and math.isnan(expected)):
                assert key not in channel
            else:
                assert channel[key] == expected
        assert channel["bursts"] == [] and channel["delays"] == []


def test_species_statistics_match_the_results(case):
    annotations = read_annotations(case["output"])
    methods = {"ssa" if hasattr(r, "states") else "deterministic": r for r in case["results"]}
    for method, result in methods.items():
        moments = (result.moments if hasattr(result, "moments")
                   else _deterministic_moments(result))
        for row in last_time_statistics(moments).itertuples():
            stats = annotations["species"][row.species][method]
            assert stats["time"] == TIMES[-1]
            assert stats["mean"] == row.mean and stats["sd"] == row.sd
            assert (math.isnan(stats["fano_factor"]) if math.isnan(row.fano_factor)
                    else stats["fano_factor"] == row.fano_factor)


def _deterministic_moments(result):
    from sbml_cme.io.sbml_writer import _wide_to_moments
    return _wide_to_moments(result.to_wide("count"), scales=None)


def test_model_annotation_records_settings_seed_and_version(case):
    import sbml_cme
    model = read_annotations(case["output"])["model"]
    assert model["package_version"] == sbml_cme.__version__
    assert model["date"]
    runs = {run["method"]: run for run in model["runs"]}
    assert runs["deterministic"]["t_end"] == 10.0 and runs["deterministic"]["n_times"] == 11
    if CASES[case["name"]]:
        assert runs["ssa"]["seed"] == 1
        assert runs["ssa"]["settings"]["n_trajectories"] == 50
    assert model["bursts"] == [] and model["delays"] == []
    assert b"burst" not in case["output"].read_bytes()


# -- more inputs and failures ------------------------------------------------------------------
def test_writing_an_annotated_file_again_replaces_the_annotations(tmp_path):
    network = read_sbml(DSMTS)
    first = write_annotated_sbml(network, simulate_deterministic(network, TIMES),
                                 tmp_path / "first.xml")
    again = read_sbml(first)
    assert again == network
    second = write_annotated_sbml(again, {"ode": simulate_deterministic(again, TIMES)},
                                  tmp_path / "second.xml")
    root = ET.parse(second).getroot()
    for annotation in (e for e in root.iter() if e.tag.endswith("}annotation")):
        assert sum(c.tag.startswith("{" + NAMESPACE) for c in annotation) <= 1
    species = read_annotations(second)["species"]["P"]
    assert set(species) == {"ode"}


def test_cme_and_report_like_inputs(tmp_path):
    network = read_sbml(DSMTS)
    times = np.linspace(0.0, 5.0, 6)
    cme = solve_cme(network, times)
    ssa = simulate_ssa(network, times, n_trajectories=50, seed=1)
    deterministic = simulate_deterministic(network, times)

    @dataclasses.dataclass
    class Report:  # the shape of reports.analyze.Report
        network: Network
        tables: dict
        run_info: dict

    report = Report(network, {"cme_moments": cme.moments, "ssa_moments": ssa.moments,
                              "deterministic": deterministic.to_wide("model"),
                              "conversion": network.conversion_table()},
                    {"seed": 1, "t_end": 5.0, "package_version": "x"})
    annotations = read_annotations(write_annotated_sbml(network, report, tmp_path / "r.xml"))
    species = annotations["species"]["P"]
    assert set(species) == {"cme", "ssa", "deterministic"}
    np.testing.assert_allclose(species["deterministic"]["mean"], deterministic.counts[-1, 0],
                               rtol=1e-12)
    assert species["cme"]["mean"] == pytest.approx(
        cme.moments.query("species == 'P'")["mean"].iloc[-1], rel=1e-15)
    runs = {run["method"]: run for run in annotations["model"]["runs"]}
    assert runs["ssa"]["seed"] == 1 and "seed" not in runs["cme"]
    assert annotations["model"]["settings"]["t_end"] == 5.0
    # A single result works too, and names its method.
    single = read_annotations(write_annotated_sbml(network, cme, tmp_path / "c.xml"))
    assert set(single["species"]["P"]) == {"cme"}


def test_zero_mean_gives_nan_fano_factor(tmp_path):
    text = make_sbml({"X": 0, "Y": 0}, [("birth", {}, {"X": 1}, "k")], parameters={"k": 1.0})
    network = read_sbml_string(text)
    result = simulate_ssa(network, [0.0, 1.0], n_trajectories=20, seed=3)
    species = read_annotations(write_annotated_sbml(network, result, tmp_path / "z.xml"))
    assert math.isnan(species["species"]["Y"]["ssa"]["fano_factor"])
    assert species["species"]["Y"]["ssa"]["mean"] == 0.0


def test_bursts_and_delays_are_written_when_declared(tmp_path):
    text = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d*X")],
                     parameters={"k": 10.0, "d": 1.0})
    network = read_sbml_string(text)
    BurstNetwork = dataclasses.make_dataclass(
        "BurstNetwork", [("bursts", tuple, dataclasses.field(default=())),
                         ("delays", tuple, dataclasses.field(default=()))],
        bases=(Network,), frozen=True)
    burst = {"reaction": "birth", "distribution": "geometric", "mean_size": 5.0}
    delay = {"reaction": "death", "distribution": "fixed", "delay": 2.0}
    declared = BurstNetwork(**{f.name: getattr(network, f.name)
                               for f in dataclasses.fields(Network)},
                            bursts=(burst,), delays=(delay,))
    annotations = read_annotations(write_annotated_sbml(declared, None, tmp_path / "b.xml"))
    birth, = annotations["reactions"]["birth"]
    death, = annotations["reactions"]["death"]
    assert birth["bursts"] == [{"channel": "birth", "distribution": "geometric",
                                "mean_size": 5.0}]
    assert death["delays"] == [{"channel": "death", "distribution": "fixed", "delay": 2.0}]
    assert birth["delays"] == [] and death["bursts"] == []


def test_network_without_source_sbml_is_refused(tmp_path):
    network = Network(species=(Species("X", "cell", 0.0),),
                      reactions=(Reaction("r", (), (("X", 1),),
                                          MassAction(rate_constant=1.0, orders=())),))
    with pytest.raises(OptionsError, match="read_sbml"):
        write_annotated_sbml(network, None, tmp_path / "x.xml")


def test_network_changed_after_reading_is_refused(tmp_path):
    network = read_sbml(DSMTS).with_parameters(k1=0.5)
    with pytest.raises(OptionsError, match="with_parameters"):
        write_annotated_sbml(network, None, tmp_path / "x.xml")


def test_results_of_another_network_are_refused(tmp_path):
    network = read_sbml(DSMTS)
    other = simulate_deterministic(network.with_initial_counts(P=5), TIMES)
    with pytest.raises(OptionsError, match="different network"):
        write_annotated_sbml(network, other, tmp_path / "x.xml")


def test_two_results_with_one_method_name_must_be_named(tmp_path):
    network = read_sbml(DSMTS)
    first, second = (simulate_ssa(network, TIMES, n_trajectories=5, seed=s) for s in (1, 2))
    with pytest.raises(OptionsError, match="dict"):
        write_annotated_sbml(network, [first, second], tmp_path / "x.xml")
    annotations = read_annotations(write_annotated_sbml(
        network, {"ssa_seed1": first, "ssa_seed2": second}, tmp_path / "y.xml"))
    assert set(annotations["species"]["P"]) == {"ssa_seed1", "ssa_seed2"}


def test_reported_parameters_are_no_change_to_the_model(tmp_path):
    """Outputs asked for (read option or with_outputs) observe the model: the annotated
    file records them in read_options, and write_sbml still writes the network."""
    text = make_sbml({"X": 0}, [("birth", {}, {"X": 1}, "k"), ("death", {"X": 1}, {}, "d*X")],
                     parameters={"k": 10.0, "d": 1.0})
    read_option = read_sbml_string(text, outputs=["k"])
    added = read_sbml_string(text).with_outputs(["d", "cell"])
    for network in (read_option, added):
        result = simulate_ssa(network, [0.0, 1.0], n_trajectories=20, seed=3)
        annotations = read_annotations(write_annotated_sbml(network, result,
                                                            tmp_path / "o.xml"))
        outputs = [o.id for o in network.outputs]
        # Constant parameters are not random variables: no ensemble statistics for them.
        assert not set(outputs) & set(annotations["species"])
        assert read_sbml(tmp_path / "o.xml", **annotations["model"]["read_options"]) \
            .with_outputs(outputs) == network
        assert write_sbml(network, tmp_path / "w.xml").exists()
    assert annotations["model"]["read_options"].get("outputs") is None
    assert read_annotations(write_annotated_sbml(read_option, None, tmp_path / "r.xml"))[
        "model"]["read_options"]["outputs"] == ["k"]
