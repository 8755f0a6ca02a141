"""The ``sbml-cme`` command line: parse arguments, call the public API, write files.

Exit codes: 0 success, 1 a failed check, 2 bad usage or options (or an output file that
cannot be written), 3 SBML rejected (InvalidSBMLError, UnsupportedFeatureError; also a
missing, unreadable or directory input), 4 an analysis error, 5 an internal error (a bug).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

from .analyses.cme import METHODS as CME_METHODS
from .analyses.ssa import MAX_EVENTS as SSA_MAX_EVENTS
from .errors import OptionsError, SbmlCmeError, exit_code_for

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_SBML, EXIT_ANALYSIS, EXIT_INTERNAL = 0, 1, 2, 3, 4, 5

#: Initial copy numbers above which `info` warns that exact simulation is impractical.
LARGE_COUNT = 1e6


def _read_options(args) -> dict:
    options = {}
    if getattr(args, "volume", None):
        volumes = {}
        for item in args.volume:
            name, _, value = item.partition("=")
            try:
                volumes[name] = float(value)
            except ValueError:
                raise OptionsError(f"--volume expects COMPARTMENT=LITRES, got {item!r}") from None
        options["volumes"] = volumes
    if getattr(args, "substance_unit", None):
        unit = args.substance_unit
        try:
            unit = float(unit)
        except ValueError:
            pass
        options["substance_unit"] = unit
    if getattr(args, "no_falling_factorials", False):
        options["falling_factorials"] = False
    if getattr(args, "delay_phases", None) is not None:
        options["delays"] = "phases"
        options["delay_phases"] = args.delay_phases
    return options


def _times(args) -> np.ndarray:
    from .reports.analyze import output_times

    try:
        return output_times(args.t_end, args.points)
    except OptionsError:
        raise OptionsError("--t-end must be >= 0 (0: the initial state alone) and --points "
                           "at least 2 (1 only with --t-end 0)") from None


def _write(frame: pd.DataFrame, path: str | None) -> None:
    if path:
        from .reports.files import write_csv

        write_csv(frame, path)
        print(f"wrote {path}")
    else:
        print(frame.to_csv(index=False), end="")


def cmd_info(args) -> int:
    from .analyses.ssa import pending_compilation
    from .io import read_sbml
    from .kinetics import compile_network

    network = read_sbml(args.model, **_read_options(args))
    frames = network.summary_frames()
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_colwidth", 60, "display.max_rows", 500):
        print(f"model {network.id!r} {network.name!r}: {len(network.species)} species, "
              f"{len(network.reactions)} reaction channels, {len(network.events)} events, "
              f"{len(network.outputs)} rule outputs")
        print("\nSpecies\n", frames["species"].to_string(index=False))
        print("\nReactions\n", frames["reactions"].to_string(index=False))
        if "partition" in frames:
            print("\nPartition (continuous parts)\n",
                  frames["partition"].to_string(index=False))
        print("\nConversion table\n", network.conversion_table().drop(
            columns=["deterministic_rate"]).to_string(index=False))
    for note in network.notes:
        print(f"note: {note}")
    largest = max((s.initial_count for s in network.species), default=0.0)
    pending = pending_compilation(network)  # before the propensities below compile some
    rates = compile_network(network).propensities(network.initial_counts)
    if largest > LARGE_COUNT:
        print(f"warning: initial copy numbers up to {largest:.3g} molecules: exact "
              "simulation will be slow or impossible. If the model is meant for small "
              "numbers, set volumes (--volume COMPARTMENT=LITRES) or --substance-unit item.")
    fractional = [s.id for s in network.species
                  if abs(s.initial_count - round(s.initial_count)) > 1e-6 * max(1.0, s.initial_count)]
    if fractional:
        print(f"note: initial counts of {', '.join(fractional[:5])}"
              f"{' ...' if len(fractional) > 5 else ''} are not whole numbers of molecules; "
              "the SSA and the CME round them to the nearest whole number.")
    print(f"initial total propensity: {np.sum(rates):.6g} events per time unit")
    if pending:
        print(f"note: compile pending: the first simulation compiles {', '.join(pending)} "
              "(numba's disk cache is empty or stale; a few seconds once, then cached)")
    else:
        print("kernels: compiled and cached (the first simulation starts at once)")
    return EXIT_OK


def cmd_ssa(args) -> int:
    from .analyses import simulate_ssa
    from .io import read_sbml

    from .analyses.ensemble import dask_client

    network = read_sbml(args.model, **_read_options(args))
    with dask_client(args.dask_scheduler) as client:
        result = simulate_ssa(network, _times(args), n_trajectories=args.trajectories,
                              seed=args.seed, method=args.method, n_jobs=args.jobs,
                              progress=not args.no_progress, client=client,
                              max_events=args.max_events)
    _write(result.stats(units=args.units), args.out)
    print(f"{result.total_events} reaction events in {result.run_info['wall_time']:.2f} s "
          f"(method {result.run_info['algorithm']}; {result.run_info['method_reason']})",
          file=sys.stderr)
    return EXIT_OK


def cmd_lna(args) -> int:
    from .analyses import solve_lna
    from .io import read_sbml

    network = read_sbml(args.model, **_read_options(args))
    times = _times(args) if args.t_end is not None else None
    result = solve_lna(network, times)
    _write(result.noise, args.out)
    info = result.run_info
    print(f"LNA ({info['mode']}) in {info['wall_time']:.2f} s", file=sys.stderr)
    return EXIT_OK


def cmd_cle(args) -> int:
    from .analyses import simulate_cle
    from .analyses.ensemble import dask_client
    from .io import read_sbml

    network = read_sbml(args.model, **_read_options(args))
    with dask_client(args.dask_scheduler) as client:
        result = simulate_cle(network, _times(args), n_trajectories=args.trajectories,
                              seed=args.seed, method=args.method, dt=args.dt,
                              n_jobs=args.jobs, progress=not args.no_progress, client=client)
    _write(result.stats(units=args.units), args.out)
    info = result.run_info
    print(f"{result.total_events} CLE steps (dt={info['dt']:.3g}, {info['clipped_steps']} "
          f"clipped at zero) in {info['wall_time']:.2f} s", file=sys.stderr)
    return EXIT_OK


def cmd_ode(args) -> int:
    from .analyses import simulate_deterministic
    from .io import read_sbml

    network = read_sbml(args.model, **_read_options(args))
    result = simulate_deterministic(network, _times(args))
    _write(result.to_wide(units=args.units), args.out)
    return EXIT_OK


def cmd_cme(args) -> int:
    from .analyses import solve_cme, stationary_cme
    from .io import read_sbml

    network = read_sbml(args.model, **_read_options(args))
    if args.stationary:
        result = stationary_cme(network, tol=args.tol, max_states=args.max_states)
    else:
        result = solve_cme(network, _times(args), tol=args.tol, max_states=args.max_states,
                           method=args.method)
    _write(result.stats(), args.out)
    if args.distribution:
        marginals = pd.concat([result.marginal(s).assign(species=s)
                               for s in network.species_ids], ignore_index=True)
        _write(marginals[["time", "species", "count", "probability"]], args.distribution)
    print(f"{result.n_states} states, certified L1 error {result.error_bound:.3g}",
          file=sys.stderr)
    return EXIT_OK


def cmd_structure(args) -> int:
    from pathlib import Path

    from .analyses.structure import analyze_structure
    from .io import read_sbml

    result = analyze_structure(read_sbml(args.model, **_read_options(args)))
    print(result)
    with pd.option_context("display.width", 200, "display.max_rows", 200,
                           "display.max_colwidth", 80):
        print("\nComplexes\n", result.tables["complexes"].to_string(index=False))
        print("\nLinkage classes\n", result.tables["linkage_classes"].to_string(index=False))
    if args.out:
        directory = Path(args.out)
        directory.mkdir(parents=True, exist_ok=True)
        tables = {"properties": result.properties, **result.tables}
        for name, table in tables.items():
            table.to_csv(directory / f"{name}.csv", index=False)
        print(f"wrote {len(tables)} tables to {directory}")
    return EXIT_OK


def cmd_crosscheck(args) -> int:
    from .crosscheck import crosscheck

    table = crosscheck(args.model, _times(args), **_read_options(args))
    _write(table, args.out)
    disagree = table[table.verdict != "agree"]
    if len(disagree):
        print(f"DISAGREE with tellurium: {', '.join(disagree.species)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    print(f"all {len(table)} columns agree with tellurium", file=sys.stderr)
    return EXIT_OK


def cmd_analyze(args) -> int:
    from .analyses.ensemble import dask_client
    from .reports.analyze import analyze

    with dask_client(args.dask_scheduler) as client:
        report = analyze(args.model, t_end=args.t_end, points=args.points,
                         n_trajectories=args.trajectories, seed=args.seed,
                         progress=not args.no_progress, client=client,
                         **_read_options(args))
    paths = report.write(args.out)
    if args.omex:
        paths.append(report.to_omex(args.omex))
    print(report.summary())
    html = next((path for path in paths if path.name == "report.html"), None)
    print(f"wrote {len(paths)} files to {args.out}; open the report: "
          f"{html.resolve() if html else None}")
    return EXIT_CHECK_FAILED if report.crosscheck_passed() is False else EXIT_OK


def cmd_run(args) -> int:
    from .sedml import run_sedml

    reports = run_sedml(args.input, args.output, substitution_policy=args.substitution_policy,
                        n_jobs=args.jobs)
    print(f"ran {args.input}: {len(reports)} report(s) "
          f"({', '.join(reports) or 'none'}); outputs and log.yml in {args.output}")
    return EXIT_OK


def _parameter_boxes(items) -> dict:
    boxes = {}
    for item in items or ():
        name, _, box = item.partition("=")
        low, _, high = box.partition(":")
        try:
            boxes[name] = (float(low), float(high))
        except ValueError:
            raise OptionsError(f"--param expects ID=LOW:HIGH, got {item!r}") from None
    if not boxes:
        raise OptionsError("sbml-cme fit needs at least one --param ID=LOW:HIGH")
    return boxes


def cmd_fit(args) -> int:
    from .analyses.fit import fit_cme
    from .io import read_sbml
    from .reports.fit_report import write_fit_report

    network = read_sbml(args.model, **_read_options(args))
    boxes = _parameter_boxes(args.param)
    data = pd.read_csv(args.data)
    fit = fit_cme(network, data, boxes, log_space=not args.linear, n_starts=args.starts,
                  seed=args.seed, tol=args.tol)
    posterior = None
    if args.mcmc:
        posterior = fit.sample_posterior(args.mcmc, seed=args.seed)
    paths = write_fit_report(fit, args.out, profiles=args.profile or (), posterior=posterior,
                             title=f"CME fit of {network.id or args.model}")
    print(fit.summary())
    print(f"wrote {len(paths)} files to {args.out}")
    return EXIT_OK


def cmd_batch(args) -> int:
    from .analyses.ensemble import dask_client
    from .reports.batch import run_batch, summary_line

    with dask_client(args.dask_scheduler) as client:
        table = run_batch(args.inputs, args.out, time_limit=args.time_limit,
                          progress=not args.no_progress, client=client, t_end=args.t_end,
                          points=args.points, n_trajectories=args.trajectories,
                          seed=args.seed)
    print(f"status table: {args.out}/status.csv")
    print(summary_line(table))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbml-cme", description="Exact stochastic analyses of SBML models.",
        epilog="Exit codes: 0 ok, 1 failed check, 2 bad options, 3 SBML rejected, "
               "4 analysis error, 5 internal error (a bug).")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    def model_command(name, function, help_text):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("model", help="SBML file")
        command.add_argument("--volume", action="append", metavar="COMPARTMENT=LITRES",
                             help="override a compartment volume (repeatable)")
        command.add_argument("--substance-unit", metavar="UNIT",
                             help="what one substance unit is: item, mole, nanomole, ... "
                                  "or molecules per unit")
        command.add_argument("--no-falling-factorials", action="store_true",
                             help="use n**m instead of (n)_m (laws already propensities)")
        command.add_argument("--delay-phases", type=int, metavar="K",
                             help="read delay() in kinetic laws as K memoryless phases "
                                  "(Erlang delay; docs/delays.md)")
        command.add_argument("--debug", action="store_true", help="show tracebacks")
        command.set_defaults(function=function)
        return command

    def timed(command, points=51):
        command.add_argument("--t-end", type=float, default=10.0)
        command.add_argument("--points", type=int, default=points,
                             help="output points from 0 to T inclusive")

    def ensemble(command):
        command.add_argument("--trajectories", type=int, default=1000)
        command.add_argument("--seed", type=int, default=None)
        command.add_argument("--no-progress", action="store_true")

    model_command("info", cmd_info, "species, reactions and the conversion table")
    ssa = model_command("ssa", cmd_ssa, "exact SSA ensemble statistics (time, X-mean, X-sd)")
    timed(ssa)
    ensemble(ssa)
    ssa.add_argument("--method", default="auto", choices=["auto", "direct", "tree"],
                     help="auto (default): the faster exact method for the model")
    ssa.add_argument("--max-events", type=float, default=SSA_MAX_EVENTS,
                     help="refuse a run expected to fire more reaction events than this "
                          f"(default {SSA_MAX_EVENTS:.0e}); raise it to run anyway")
    ssa.add_argument("--jobs", type=int, default=None, help="threads (default: all cores)")
    ssa.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="run the ensemble on this Dask cluster (tcp://host:port)")
    ssa.add_argument("--units", default="count", choices=["count", "model"])
    ssa.add_argument("--out", help="CSV file (default: standard output)")
    cle = model_command("cle", cmd_cle, "chemical Langevin ensemble statistics "
                                        "(time, X-mean, X-sd)")
    timed(cle)
    ensemble(cle)
    cle.add_argument("--method", default="euler", choices=["euler", "weak2"])
    cle.add_argument("--dt", type=float, default=None, help="step (default: from the "
                     "fastest rate at the initial state)")
    cle.add_argument("--jobs", type=int, default=None, help="threads (default: all cores)")
    cle.add_argument("--dask-scheduler", metavar="ADDRESS",
                     help="run the ensemble on this Dask cluster (tcp://host:port)")
    cle.add_argument("--units", default="count", choices=["count", "model"])
    cle.add_argument("--out", help="CSV file (default: standard output)")
    lna = model_command("lna", cmd_lna, "linear noise approximation: time, species, mean, "
                                        "variance, fano_factor, cv_squared (steady state "
                                        "unless --t-end is given)")
    lna.add_argument("--t-end", type=float, default=None,
                     help="time-dependent LNA from 0 to T (default: steady state)")
    lna.add_argument("--points", type=int, default=51, help="output points from 0 to T")
    lna.add_argument("--out", help="CSV file (default: standard output)")
    ode = model_command("ode", cmd_ode, "deterministic rate equations")
    timed(ode)
    ode.add_argument("--units", default="model",
                     choices=["model", "amount", "concentration", "count"])
    ode.add_argument("--out", help="CSV file (default: standard output)")
    cme = model_command("cme", cmd_cme, "chemical master equation by finite state projection")
    timed(cme)
    cme.add_argument("--stationary", action="store_true", help="the stationary law instead")
    cme.add_argument("--tol", type=float, default=1e-6, help="certified L1 error bound")
    cme.add_argument("--max-states", type=int, default=None)
    cme.add_argument("--method", default="auto", choices=sorted(CME_METHODS),
                     help="transient propagator (docs/cme.md; default: auto by size)")
    cme.add_argument("--out", help="CSV of time, X-mean, X-sd (default: standard output)")
    cme.add_argument("--distribution", metavar="FILE",
                     help="also write the marginals: time, species, count, probability")
    structure = model_command("structure", cmd_structure,
                              "conservation laws, complexes, linkage classes, deficiency, "
                              "complex balance")
    structure.add_argument("--out", metavar="DIR", help="also write every table as CSV")
    check = model_command("crosscheck", cmd_crosscheck,
                          "compare the rate equations with tellurium (exit 1 on disagreement)")
    timed(check)
    check.add_argument("--out", help="CSV file (default: standard output)")
    analyze = model_command("analyze", cmd_analyze, "run every analysis; write tables to DIR")
    analyze.add_argument("--t-end", type=float, default=None,
                         help="horizon (default: from the model's time scales, the "
                              "relaxation to steady state or 5 periods of an oscillation)")
    analyze.add_argument("--points", type=int, default=51,
                         help="output points from 0 to T inclusive")
    ensemble(analyze)
    analyze.add_argument("--out", required=True, metavar="DIR")
    analyze.add_argument("--dask-scheduler", metavar="ADDRESS",
                         help="run the SSA and CLE ensembles on this Dask cluster")
    analyze.add_argument("--omex", metavar="FILE",
                         help="also write the experiment as a COMBINE archive (SBML, "
                              "SED-ML L1V4, results; docs/sedml.md)")
    run = commands.add_parser("run", help="run a SED-ML file or COMBINE archive "
                              "(BioSimulators command-line convention)")
    run.add_argument("-i", "--archive", dest="input", required=True,
                     metavar="PATH.omex|PATH.sedml")
    run.add_argument("-o", "--out-dir", dest="output", required=True, metavar="OUTDIR",
                     help="CSV per report, reports.h5, PNG per plot, log.yml")
    run.add_argument("--substitution-policy", metavar="POLICY", default=None,
                     help="let KiSAO substitute algorithms sbml_cme does not implement "
                          "(SAME_MATH, SIMILAR_APPROXIMATIONS, ...; default: refuse them)")
    run.add_argument("--jobs", type=int, default=None, help="threads (default: all cores)")
    run.add_argument("--debug", action="store_true", help="show tracebacks")
    run.set_defaults(function=cmd_run)
    fit = model_command("fit", cmd_fit, "fit rate constants to single-cell counts by the "
                                        "exact CME (FSP) likelihood (docs/inference.md)")
    fit.add_argument("data", help="CSV: time,<species...> one row per cell (n_cells, "
                                  "experiment optional) or time,species,count,n_cells")
    fit.add_argument("--param", action="append", metavar="ID=LOW:HIGH",
                     help="a parameter to fit and its search box (repeatable)")
    fit.add_argument("--starts", type=int, default=4, help="L-BFGS-B starts (default 4)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--tol", type=float, default=1e-8, help="FSP leaked-mass tolerance")
    fit.add_argument("--linear", action="store_true",
                     help="optimise in natural units (default: log space)")
    fit.add_argument("--profile", action="append", metavar="ID",
                     help="also compute this parameter's profile likelihood (repeatable)")
    fit.add_argument("--mcmc", type=int, default=0, metavar="STEPS",
                     help="also sample the posterior by emcee for STEPS steps "
                          "(needs sbml_cme[mcmc]; writes posterior_*.csv)")
    fit.add_argument("--out", required=True, metavar="DIR")
    batch = commands.add_parser("batch", help="analyze many models (resumable)")
    batch.add_argument("inputs", nargs="+", metavar="DIR_OR_FILES")
    batch.add_argument("--out", required=True, metavar="DIR")
    batch.add_argument("--time-limit", type=float, default=600.0,
                       help="seconds per model (default 600)")
    batch.add_argument("--dask-scheduler", metavar="ADDRESS",
                       help="run each model as a task on this Dask cluster (tcp://host:port; "
                            "OUT and the models on a file system the workers share)")
    batch.add_argument("--debug", action="store_true", help="show tracebacks")
    batch.add_argument("--t-end", type=float, default=None,
                       help="horizon of every model (default: each model's own, from its "
                            "time scales, as in analyze)")
    batch.add_argument("--points", type=int, default=51,
                       help="output points from 0 to T inclusive")
    ensemble(batch)
    batch.set_defaults(function=cmd_batch)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=file or sys.stderr)


def _terminate_as_interrupt() -> None:
    """SIGTERM (a batch system's kill) acts as Ctrl-C: an ensemble keeps the blocks that
    finished and the output files are written from them, marked partial."""
    import signal
    import threading

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    import warnings

    warnings.showwarning = _show_warning
    _terminate_as_interrupt()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: usage errors exit 2, --help exits 0
        return int(exit_.code or 0)
    try:
        return args.function(args)
    except SbmlCmeError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return exit_code_for(error)
    except OSError as error:
        if args.debug:
            raise
        print(f"error: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug: one line and its own code, not Python's 1
        if args.debug:
            raise
        print(f"internal error: {type(error).__name__}: {error} (a bug in sbml_cme; rerun "
              "with --debug and report the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
