"""Fuzz the SBML import and the analyses: no traceback, no hang, no crash on any input.

Mutates bundled and suite SBML documents (deleted elements and attributes, swapped and
duplicated ids, random/negative/huge/NaN/INF numbers, broken MathML, cycles of assignment
rules, random units) and runs each mutant through read -> info -> ode -> a short ssa ->
cme -> lna in a worker process with a time limit. A clean ``SbmlCmeError`` at any stage
is a pass (the input was refused with a message); any other exception (a traceback), a
worker that exceeds the time limit (a hang) or dies (a crash) is a failure, saved as a
reproducer ``<out>/<kind>-<digest>.xml`` with the traceback in ``.txt``.

    python tools/fuzz_sbml.py --documents 10000 --seed 1 --processes 2 --out fuzz-failures

Mutant ``i`` of a run depends only on ``(seed, i)``, so a failure is reproduced with
``--seed S --first i --documents 1``. See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import random
import sys
import time
import traceback
from multiprocessing.connection import wait
from pathlib import Path
from xml.dom import minidom

ROOT = Path(__file__).resolve().parents[1]

#: Numbers put in numeric attributes and <cn> elements.
ODD_NUMBERS = ["0", "-1", "-0.5", "1e308", "-1e308", "1e-308", "NaN", "INF", "-INF", "1e12",
               "3.5", "2147483648", "-2147483649", "1e-12", "7"]
NUMERIC_ATTRIBUTES = ("value", "size", "initialAmount", "initialConcentration",
                      "stoichiometry", "spatialDimensions", "exponent", "scale",
                      "multiplier")
UNIT_ATTRIBUTES = ("units", "substanceUnits", "timeUnits", "extentUnits", "volumeUnits",
                   "areaUnits", "lengthUnits")
UNIT_NAMES = ("mole", "item", "second", "litre", "dimensionless", "metre", "gram", "kelvin",
              "no_such_unit", "")
OPERATORS = ("plus", "minus", "times", "divide", "power", "root", "exp", "ln", "log",
             "abs", "floor", "lt", "gt", "eq", "and", "not", "piecewise", "factorial")

#: Seconds a new worker may take to import the package and load its compiled kernels.
STARTUP_LIMIT = 600.0

#: Stages of the pipeline each mutant runs through, in order.
STAGES = ("read", "info", "ode", "ssa", "cme", "lna")


# -- seeds ----------------------------------------------------------------------------------
def seed_documents() -> list[Path]:
    """Bundled BioModels up to 25 kB, the vendored semantic and stochastic (DSMTS) suite
    cases and the unit battery, sorted (a fixed order keeps runs reproducible)."""
    data = ROOT / "tests" / "data"
    files = [p for p in (ROOT / "models" / "biomodels").glob("*.xml")
             if p.stat().st_size <= 25_000]
    files += list(data.glob("semantic/*/*.xml")) + list(data.glob("dsmts/*/*.xml"))
    files += list(data.glob("battery/*.xml"))
    return sorted(files)


# -- mutations ------------------------------------------------------------------------------
def _elements(document) -> list:
    return [e for e in document.getElementsByTagName("*")
            if e.parentNode is not None and e.parentNode.nodeType == e.ELEMENT_NODE]


def _local(element) -> str:
    return element.tagName.rsplit(":", 1)[-1]


def delete_element(document, rng) -> str:
    element = rng.choice(_elements(document))
    element.parentNode.removeChild(element)
    return f"delete <{element.tagName}>"


def delete_attribute(document, rng) -> str:
    candidates = [e for e in _elements(document) if e.attributes.length]
    element = rng.choice(candidates)
    name = rng.choice([a for a in element.attributes.keys() if not a.startswith("xmlns")]
                      or list(element.attributes.keys()))
    element.removeAttribute(name)
    return f"delete {name} of <{element.tagName}>"


def _with_ids(document) -> list:
    return [e for e in _elements(document) if e.hasAttribute("id")]


def swap_ids(document, rng) -> str:
    first, second = rng.sample(_with_ids(document), 2)
    a, b = first.getAttribute("id"), second.getAttribute("id")
    first.setAttribute("id", b)
    second.setAttribute("id", a)
    return f"swap ids {a} <-> {b}"


def duplicate_id(document, rng) -> str:
    first, second = rng.sample(_with_ids(document), 2)
    second.setAttribute("id", first.getAttribute("id"))
    return f"duplicate id {first.getAttribute('id')}"


def odd_number(document, rng) -> str:
    attributes = [(e, name) for e in _elements(document) for name in NUMERIC_ATTRIBUTES
                  if e.hasAttribute(name)]
    numbers = [e for e in document.getElementsByTagName("cn")]
    value = rng.choice(ODD_NUMBERS) if rng.random() < 0.8 else repr(rng.uniform(-1e6, 1e6))
    if numbers and (not attributes or rng.random() < 0.4):
        element = rng.choice(numbers)
        for child in list(element.childNodes):
            element.removeChild(child)
        element.removeAttribute("type") if element.hasAttribute("type") else None
        element.appendChild(document.createTextNode(f" {value} "))
        return f"<cn> {value}"
    element, name = rng.choice(attributes)
    element.setAttribute(name, value)
    return f"{name}={value} on <{element.tagName}>"


def break_math(document, rng) -> str:
    applies = document.getElementsByTagName("apply")
    names = document.getElementsByTagName("ci")
    choice = rng.random()
    if applies and choice < 0.5:
        apply = rng.choice(applies)
        children = [c for c in apply.childNodes if c.nodeType == c.ELEMENT_NODE]
        if len(children) > 1 and rng.random() < 0.5:
            apply.removeChild(rng.choice(children[1:]))
            return "remove an argument"
        if children:
            operator = document.createElement(rng.choice(OPERATORS))
            apply.replaceChild(operator, children[0])
            return f"operator -> {operator.tagName}"
    if names and choice < 0.8:
        name = rng.choice(names)
        for child in list(name.childNodes):
            name.removeChild(child)
        name.appendChild(document.createTextNode(rng.choice(
            [" undefined_symbol ", " time ", " ", _random_id(document, rng)])))
        return "rename a <ci>"
    maths = document.getElementsByTagName("math")
    if maths:
        math = rng.choice(maths)
        for child in list(math.childNodes):
            math.removeChild(child)
        return "empty <math>"
    return "no math"


def _random_id(document, rng) -> str:
    ids = [e.getAttribute("id") for e in _with_ids(document)]
    return f" {rng.choice(ids)} " if ids else " x "


def rule_cycle(document, rng) -> str:
    models = document.getElementsByTagName("model")
    if not models:
        return "no model"
    model = models[0]
    prefix = model.tagName[:-len("model")]
    parameters = [e.getAttribute("id") for e in document.getElementsByTagName(prefix + "parameter")
                  if e.hasAttribute("id")]
    a, b = (rng.sample(parameters, 2) if len(parameters) >= 2 else ("cycle_a", "cycle_b"))
    rules = document.getElementsByTagName(prefix + "listOfRules")
    if rules:
        holder = rules[0]
    else:
        holder = document.createElement(prefix + "listOfRules")
        model.appendChild(holder)
    for variable, other in ((a, b), (b, a)):
        rule = document.createElement(prefix + "assignmentRule")
        rule.setAttribute("variable", variable)
        math = document.createElement("math")
        math.setAttribute("xmlns", "http://www.w3.org/1998/Math/MathML")
        ci = document.createElement("ci")
        ci.appendChild(document.createTextNode(other))
        math.appendChild(ci)
        rule.appendChild(math)
        holder.appendChild(rule)
    return f"rule cycle {a} <-> {b}"


def random_units(document, rng) -> str:
    element = rng.choice(_elements(document))
    name = rng.choice(UNIT_ATTRIBUTES)
    unit = rng.choice(UNIT_NAMES)
    element.setAttribute(name, unit)
    return f"{name}={unit!r} on <{element.tagName}>"


MUTATIONS = (delete_element, delete_attribute, swap_ids, duplicate_id, odd_number,
             odd_number, break_math, rule_cycle, random_units)


def mutant(seeds: list[Path], seed: int, index: int) -> tuple[str, str, list[str]]:
    """(source name, mutated SBML text, mutation descriptions) of mutant ``index``."""
    rng = random.Random(f"{seed}:{index}")
    source = seeds[rng.randrange(len(seeds))]
    document = minidom.parseString(source.read_bytes())
    done = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        mutation = rng.choice(MUTATIONS)
        try:
            done.append(mutation(document, rng))
        except (ValueError, IndexError):  # nothing to mutate of that kind
            done.append(f"{mutation.__name__}: nothing to do")
    return source.name, document.toxml(encoding="UTF-8").decode("utf-8"), done


# -- the pipeline (in a worker) --------------------------------------------------------------
def run_pipeline(text: str) -> tuple[str, str]:
    """Run one document through every stage; returns (outcome, detail) with outcome
    ``refused:<stage>`` (a clean SbmlCmeError), ``ok`` or ``traceback:<stage>``."""
    import warnings

    import numpy as np

    import sbml_cme
    from sbml_cme.analyses import simulate_deterministic, simulate_ssa, solve_cme, solve_lna
    from sbml_cme.kinetics import compile_network

    warnings.simplefilter("ignore")
    times = np.linspace(0.0, 1.0, 5)
    network = None
    stages = {
        "read": lambda: sbml_cme.read_sbml_string(text),
        "info": lambda: (network.summary_frames(), network.conversion_table(),
                         compile_network(network).propensities(network.initial_counts)),
        "ode": lambda: simulate_deterministic(network, times, max_evaluations=20_000),
        "ssa": lambda: simulate_ssa(network, times, n_trajectories=4, seed=1, n_jobs=1,
                                    max_events=20_000).stats(),
        "cme": lambda: solve_cme(network, times, max_states=2_000).stats(),
        "lna": lambda: solve_lna(network, times).noise,
    }
    refused = []
    for stage, function in stages.items():
        try:
            value = function()
        except sbml_cme.SbmlCmeError as error:
            if stage in ("read", "info"):
                return f"refused:{stage}", str(error).splitlines()[0][:200]
            refused.append(stage)
            continue
        except Exception:  # the failures the fuzzer looks for
            return f"traceback:{stage}", traceback.format_exc()
        if stage == "read":
            network = value
    return "ok", ",".join(refused)


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver dies (a killed campaign
    otherwise leaves workers spinning on a hung document)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker(connection, warmup_text: str) -> None:
    _die_with_parent()
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    run_pipeline(warmup_text)  # imports and loads the compiled kernels before the clock runs
    connection.send("ready")
    while True:
        job = connection.recv()
        if job is None:
            return
        connection.send(run_pipeline(job))


# -- the driver -------------------------------------------------------------------------------
class _Slot:
    """One worker process and the job it runs."""

    def __init__(self, context, warmup_text: str):
        self.context = context
        self.warmup_text = warmup_text
        self.start()

    def start(self):
        self.parent, child = self.context.Pipe()
        self.process = self.context.Process(target=_worker, args=(child, self.warmup_text),
                                            daemon=True)
        self.process.start()
        child.close()
        self.job = None
        self.ready = False
        self.deadline = time.monotonic() + STARTUP_LIMIT

    def submit(self, job, timeout):
        index, name, text, mutations = job
        self.job = job
        self.deadline = time.monotonic() + timeout
        self.parent.send(text)

    def kill(self):
        self.process.kill()
        self.process.join()
        self.parent.close()
        self.start()


def fuzz(n_documents: int, seed: int, *, first: int = 0, processes: int = 2,
         timeout: float = 60.0, out: Path | None = None, progress: bool = True) -> dict:
    """Run ``n_documents`` mutants (indices ``first`` ...); returns counts by outcome
    and the list of failures ``(index, source, kind, mutations)``."""
    seeds = seed_documents()
    context = multiprocessing.get_context("spawn")
    slots = [_Slot(context, seeds[0].read_text(encoding="utf-8")) for _ in range(processes)]
    counts: dict[str, int] = {}
    failures = []
    pending = iter(range(first, first + n_documents))
    done = 0
    started = time.monotonic()

    def record(slot, outcome, detail):
        nonlocal done
        index, name, text, mutations = slot.job
        kind = outcome.split(":")[0]
        key = outcome if kind == "refused" else kind
        counts[key] = counts.get(key, 0) + 1
        if kind in ("traceback", "hang", "crash"):
            failures.append((index, name, outcome, mutations))
            if out is not None:
                _save(out, outcome, text, f"seed {seed} index {index} source {name}\n"
                      f"mutations: {mutations}\n{outcome}\n{detail}")
        slot.job = None
        done += 1
        if progress and done % 50 == 0:
            rate = done / (time.monotonic() - started)
            print(f"{done}/{n_documents} ({rate:.2f}/s) {dict(sorted(counts.items()))}",
                  file=sys.stderr, flush=True)

    exhausted = False

    def feed(slot):
        nonlocal exhausted
        index = next(pending, None)
        if index is None:
            exhausted = True
            return
        name, text, mutations = mutant(seeds, seed, index)
        slot.submit((index, name, text, mutations), timeout)

    while True:
        busy = [slot for slot in slots if slot.job is not None]
        waiting = busy + ([] if exhausted else [slot for slot in slots if not slot.ready])
        if not waiting:
            break
        ready = wait([slot.parent for slot in waiting] +
                     [slot.process.sentinel for slot in waiting],
                     timeout=max(0.05, min(s.deadline for s in waiting) - time.monotonic()))
        for slot in waiting:
            message = None
            if slot.parent in ready or slot.parent.poll():
                try:
                    message = slot.parent.recv()
                except EOFError:
                    message = ("crash:worker", f"exit code {slot.process.exitcode}")
            elif slot.process.sentinel in ready:
                message = ("crash:worker", f"exit code {slot.process.exitcode}")
            elif time.monotonic() > slot.deadline:
                message = ("hang", f"over {timeout if slot.ready else STARTUP_LIMIT} s")
            if message is None:
                continue
            if message == "ready":
                slot.ready = True
                feed(slot)
            elif slot.job is None:
                raise RuntimeError(f"a fuzz worker could not start: {message}")
            else:
                record(slot, *message)
                if message[0] in ("hang", "crash:worker"):
                    slot.kill()  # a fresh worker, which reports ready before its next job
                else:
                    feed(slot)
    for slot in slots:
        if slot.ready:
            slot.parent.send(None)
            slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
    return {"counts": counts, "failures": failures, "documents": n_documents,
            "seconds": time.monotonic() - started}


def _save(out: Path, outcome: str, text: str, report: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    stem = f"{outcome.replace(':', '-')}-{digest}"
    (out / f"{stem}.xml").write_text(text, encoding="utf-8")
    (out / f"{stem}.txt").write_text(report, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--first", type=int, default=0, help="index of the first mutant")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds per document before it counts as a hang")
    parser.add_argument("--out", type=Path, default=Path("fuzz-failures"),
                        help="folder for reproducers")
    args = parser.parse_args(argv)
    result = fuzz(args.documents, args.seed, first=args.first, processes=args.processes,
                  timeout=args.timeout, out=args.out)
    print(f"{result['documents']} documents in {result['seconds']:.0f} s: "
          f"{dict(sorted(result['counts'].items()))}")
    for index, name, outcome, mutations in result["failures"]:
        print(f"  FAIL index {index} ({name}): {outcome}: {mutations}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
