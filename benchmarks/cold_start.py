"""Cold start: the first ``simulate_ssa`` of a fresh environment, with empty caches.

Each measurement runs in a new Python process whose numba cache (``NUMBA_CACHE_DIR``) and
sbml_cme cache (``SBML_CME_CACHE_DIR``, the compiled general laws) point to a new empty
directory, as in a fresh virtual environment. The process reports

- ``import``: ``import sbml_cme``;
- ``first``: ``read_sbml`` + the first ``simulate_ssa`` (100 trajectories), i.e. the
  numba compilation of every kernel the default path needs, wall and CPU time;
- ``second``: the same call again in that process;

then a second process on the same (now filled) cache directory reports its ``first``
call, the cached cold start. ``--commits`` measures older checkouts side by side in the
same run (``git archive`` into temporary directories), so the ideas of issue 17 can be
compared under the same machine load; the machine load (``os.getloadavg``) is printed
with every row, since the CPU time of a compile is steadier than its wall time when other
processes share the cores. Usage::

    python benchmarks/cold_start.py                       # this checkout, birth-death
    python benchmarks/cold_start.py --commits f071e3d HEAD --repeat 2
    python benchmarks/cold_start.py --model models/biomodels/BIOMD0000000012.xml

``--compiles`` also lists the slowest numba compilations (inclusive, with the caller) of
the cold process, from numba's ``numba:compile`` events.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_CHILD = r"""
import json, os, sys, time
records, stack = [], []
if os.environ.get("COLD_START_COMPILES"):
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev):
            stack.append((ev.data["dispatcher"].py_func.__name__, time.perf_counter()))

        def on_end(self, ev):
            name, start = stack.pop()
            records.append((time.perf_counter() - start, name, stack[-1][0] if stack else "-"))

    event.register("numba:compile", Listener())
wall, cpu = time.perf_counter(), time.process_time()
import numpy as np
import sbml_cme
result = {"import": time.perf_counter() - wall, "file": sbml_cme.__file__}
wall, cpu = time.perf_counter(), time.process_time()
network = sbml_cme.read_sbml(sys.argv[1])
times = np.linspace(0.0, 10.0, 11)
sbml_cme.simulate_ssa(network, times, n_trajectories=100, seed=1)
result["first"] = time.perf_counter() - wall
result["first_cpu"] = time.process_time() - cpu
wall = time.perf_counter()
sbml_cme.simulate_ssa(network, times, n_trajectories=100, seed=1)
result["second"] = time.perf_counter() - wall
result["compiles"] = sorted(records, reverse=True)[:15]
print(json.dumps(result))
"""


def run_child(source: Path, model: Path, cache: Path, compiles: bool) -> dict:
    """One fresh interpreter on ``source`` with its caches in ``cache``."""
    env = dict(os.environ, PYTHONPATH=str(source), NUMBA_CACHE_DIR=str(cache / "numba"),
               SBML_CME_CACHE_DIR=str(cache / "sbml_cme"))
    env.pop("SBML_CME_INTERPRETER", None)
    if compiles:
        env["COLD_START_COMPILES"] = "1"
    done = subprocess.run([sys.executable, "-c", _CHILD, str(model)], env=env, cwd=source,
                          capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def checkout(commit: str, into: Path) -> Path:
    """``git archive commit`` of this repository, unpacked into ``into``."""
    into.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(HERE / "models" / "birth_death.xml"))
    parser.add_argument("--commits", nargs="*", default=None,
                        help="git commits to measure side by side (default: this checkout)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--compiles", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cold_start_") as scratch:
        scratch = Path(scratch)
        sources = {"checkout": ROOT}
        if args.commits:
            sources = {c: checkout(c, scratch / f"src_{c}") for c in args.commits}
        model = Path(args.model).resolve()
        print(f"model {model.name}; {os.cpu_count()} cores; times in s")
        print(f"{'source':>10} {'import':>7} {'first':>7} {'cpu':>7} {'second':>7} "
              f"{'cached':>7} {'load':>5}")
        for repeat in range(args.repeat):
            for name, source in sources.items():
                cache = scratch / f"cache_{name}_{repeat}"
                cold = run_child(source, model, cache, args.compiles)
                warm = run_child(source, model, cache, False)
                print(f"{name[:10]:>10} {cold['import']:7.2f} {cold['first']:7.2f} "
                      f"{cold['first_cpu']:7.2f} {cold['second']:7.3f} {warm['first']:7.3f} "
                      f"{os.getloadavg()[0]:5.2f}", flush=True)
                for seconds, function, caller in cold["compiles"]:
                    print(f"{'':>12}{seconds:7.2f} {function} <- {caller}")


if __name__ == "__main__":
    main()
