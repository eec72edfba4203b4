"""The ``qopt`` command line: ``qopt solvers``, ``solve``, ``bench``, ``nas`` and ``demo``."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from qopt.exceptions import ProblemTooLargeError, QoptError

__all__ = ["main"]


def _solvers(args: argparse.Namespace, out: TextIO) -> int:
    from qopt.solvers import available_solvers, solver_status

    statuses = [solver_status(name) for name in available_solvers()]
    if args.json:
        rows = [
            {
                "name": s.spec.name,
                "summary": s.spec.summary,
                "installed": s.installed,
                "ready": s.ready,
                "status": s.message,
                "remote": s.spec.remote,
                "needs": s.spec.needs,
                "limits": s.spec.limits,
            }
            for s in statuses
        ]
        json.dump(rows, out, indent=2)
        out.write("\n")
        return 0
    width = max(len(s.spec.name) for s in statuses)
    for s in statuses:
        mark = "ready" if s.ready else "-"
        out.write(f"{s.spec.name:<{width}}  {mark:<5}  {s.spec.summary}\n")
        details = [] if s.ready and s.message == "ready" else [s.message]
        if s.spec.needs != "nothing":
            details.append(f"needs {s.spec.needs}")
        if s.spec.limits:
            details.append(f"limits: {s.spec.limits}")
        for detail in details:
            out.write(f"{'':<{width}}         {detail}\n")
    return 0


def _option_value(text: str) -> Any:
    """A ``--option`` value: JSON where it parses (``50``, ``1e3``, ``[0.1, 5]``), else a YAML
    scalar or flow collection (``true``, ``cuda``, ``{subproblem_size: 12}``)."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = str(error).splitlines()[0]
        raise _UsageError(
            f"--option: the value {text!r} is neither JSON nor YAML ({problem})."
        ) from None


def _parse_options(items: Sequence[str] | None) -> list[tuple[str | None, str, Any]]:
    """``--option [SOLVER:]KEY=VALUE`` arguments as ``(solver or None, key, value)``."""
    parsed = []
    for item in items or ():
        target, sep, raw = item.partition("=")
        solver, _, key = target.rpartition(":")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise _UsageError(
                f"--option must be KEY=VALUE with an option name as KEY, e.g. --option "
                f"num_reads=50 or --option decompose=true. Got {item!r}."
            )
        parsed.append((solver.strip() or None, key, _option_value(raw.strip())))
    return parsed


def _merge_option(options: dict[str, Any], key: str, value: Any, source: str) -> None:
    if key in options:
        raise _UsageError(f"The solver option '{key}' is given twice ({source}); give it once.")
    options[key] = value


def _solver_options(args: argparse.Namespace) -> dict[str, Any]:
    """The solver options of ``--reads``, ``--seed`` and ``--option``, checked as the Python
    API checks ``solver_options`` (unknown names listed with the valid ones)."""
    from qopt.solvers import check_solver_options, solver_spec

    accepted = solver_spec(args.solver).option_names()
    options: dict[str, Any] = {}
    for flag, option in (("reads", "num_reads"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is None:
            continue
        if flag == "reads" and not 1 <= value <= _MAX_READS:
            raise _UsageError(
                f"--reads must be a positive integer up to {_MAX_READS}. Got {value} instead."
            )
        if accepted is not None and option not in accepted:
            raise _UsageError(f"Solver '{args.solver}' has no '{option}' option (from --{flag}).")
        options[option] = value
    for solver, key, value in _parse_options(args.option):
        if solver is not None and solver != args.solver:
            raise _UsageError(
                f"--option {solver}:{key}=... names solver '{solver}', but --solver is "
                f"'{args.solver}'; drop the '{solver}:' prefix."
            )
        _merge_option(options, key, value, "by --reads/--seed and --option, or by two --option")
    check_solver_options(args.solver, options, "qopt solve --option")
    return options


def _bench_solver_options(args: argparse.Namespace, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per-solver options from ``--option [SOLVER:]KEY=VALUE``: without a prefix an option
    applies to every solver of ``--solvers``; each solver's options are checked now."""
    from qopt.solvers import check_solver_options

    solvers: dict[str, dict[str, Any]] = {name: {} for name in names}
    for solver, key, value in _parse_options(args.option):
        if key == "seed":
            raise _UsageError(
                "qopt bench seeds run i with i (--seeds N runs seeds 0..N-1); "
                "--option seed would repeat one seeded run. Drop it."
            )
        if solver is not None and solver not in solvers:
            raise _UsageError(
                f"--option {solver}:{key}=... names solver '{solver}', which is not in "
                f"--solvers ({', '.join(names)})."
            )
        for name in [solver] if solver is not None else names:
            _merge_option(solvers[name], key, value, f"by two --option for solver '{name}'")
    for name, options in solvers.items():
        check_solver_options(name, options, "qopt bench --option")
    return solvers


class _UsageError(QoptError, ValueError):
    pass


#: The largest --reads the native samplers take (a C int).
_MAX_READS = 2**31 - 1


def _writable_folder(folder: Path, flag: str) -> None:
    """Create ``folder`` now, so a path that cannot be written fails before any solving."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _UsageError(
            f"{flag}: the folder {folder} cannot be created ({error.strerror or error})."
        ) from None
    if not os.access(folder, os.W_OK):
        raise _UsageError(f"{flag}: the folder {folder} is not writable.")


def _solve(args: argparse.Namespace, out: TextIO) -> int:
    from qopt.io import load_problem
    from qopt.metering import total_record
    from qopt.pipeline import solve
    from qopt.quality import approximation_ratio, gap_to_best_known
    from qopt.solvers import resolve_solver

    if args.time_limit is not None and not 0 < args.time_limit < math.inf:
        raise _UsageError(
            f"--time-limit must be a positive, finite number of seconds. Got {args.time_limit}."
        )
    problem = load_problem(args.file, format=args.format, best_known=args.best_known)
    options = _solver_options(args)
    solver = resolve_solver(args.solver, options, owner="qopt solve")

    # With a time limit, solve in rounds until it is spent and keep the best: an anytime
    # behaviour that works the same for every backend. With --seed K, round r is seeded
    # K + r: each round is reproducible, and no round repeats another.
    best_energy, best_sample = math.inf, None
    rounds = 0
    records = []
    start = time.perf_counter()
    while True:
        if rounds and "seed" in options:
            round_seed = (options["seed"] + rounds) % 2**32
            solver = resolve_solver(args.solver, {**options, "seed": round_seed})
        solution = solve(problem.bqm, solver)
        record = solution.record
        records.append(record)
        rounds += 1
        if solution.objective < best_energy:
            best_energy, best_sample = solution.objective, solution.sample
        if args.time_limit is None or time.perf_counter() - start >= args.time_limit:
            break
    # One record for all the rounds: the printed times, joules and energy method agree.
    last = total_record(records)
    objective = problem.objective(best_energy)
    result: dict[str, Any] = {
        "problem": problem.name,
        "format": problem.format,
        "variables": problem.bqm.num_variables,
        "solver": args.solver,
        "solved_by": last.solved_by,
        "objective": objective,
        "sense": problem.sense,
        "energy": float(best_energy),
        "feasible": True,
        "rounds": rounds,
        "best_known": problem.best_known,
        "approximation_ratio": None,
        "gap_to_best_known": None,
        "wall_s": last.wall_s,
        "cpu_s": last.cpu_s,
        "energy_j": last.energy_j,
        "energy_provenance": last.energy_provenance,
        "energy_method": last.energy_method,
        "fallback": last.fallback,
        "mock": last.mock,
    }
    if problem.best_known is not None:
        with contextlib.suppress(ValueError):  # no relative gap to a zero best known
            result["gap_to_best_known"] = gap_to_best_known(
                objective, problem.best_known, sense=problem.sense
            )
        with contextlib.suppress(ValueError):  # no ratio for a zero or positive minimum
            result["approximation_ratio"] = approximation_ratio(
                objective, problem.best_known, sense=problem.sense
            )
    if last.mock:  # mock timings are fake: never report them
        for key in ("wall_s", "cpu_s", "energy_j"):
            result[key] = None
    if args.sample:
        result["sample"] = {str(k): int(v) for k, v in (best_sample or {}).items()}
    if args.json:
        json.dump(result, out, indent=2)
        out.write("\n")
        return 0
    name = "cut" if problem.sense == "max" else "energy"
    out.write(
        f"problem     {problem.name} ({problem.format}, {problem.bqm.num_variables} variables)\n"
    )
    out.write(
        f"solver      {args.solver}"
        + (f" -> fell back to {last.solved_by}" if last.fallback else "")
        + "\n"
    )
    if last.fallback:
        out.write(f"fallback    {last.fallback}\n")
    out.write(f"best {name:<6} {objective:g}   feasible: yes (unconstrained)\n")
    if problem.best_known is not None:
        ratio = result["approximation_ratio"]
        gap = result["gap_to_best_known"]
        quality = f"ratio {ratio:.4f}, " if ratio is not None else ""
        quality += f"gap {100 * gap:.3f}% to" if gap is not None else "compared with"
        out.write(f"quality     {quality} best known {problem.best_known:g}\n")
    if last.mock:
        out.write("time        not reported (mock backend: its timings are fake)\n")
    else:
        out.write(
            f"time        {last.wall_s:.3f} s wall, {last.cpu_s:.3f} s CPU, {rounds} round(s)\n"
        )
        if last.energy_provenance == "not measured":
            out.write(f"energy      not measured ({last.energy_method})\n")
        else:
            out.write(
                f"energy      {last.energy_j or 0.0:.3g} J {last.energy_provenance}: "
                f"{last.energy_method}\n"
            )
    if args.sample:
        out.write(f"sample      {result['sample']}\n")
    return 0


def _bench(args: argparse.Namespace, out: TextIO) -> int:
    from qopt.bench import (
        Comparison,
        Summary,
        compare_solvers,
        format_table,
        plot_quality_vs_time,
        plot_tts_vs_size,
        write_results,
    )
    from qopt.io import load_problem

    if not 1 <= args.seeds <= 2**32:
        # Run i is seeded i: a seed beyond 32 bits is no seed, and a count that large never ends.
        raise _UsageError(
            f"--seeds must be a positive integer up to {2**32}. Got {args.seeds} instead."
        )
    if not 0 < args.target_ratio <= 1:
        raise _UsageError(f"--target-ratio must be in (0, 1]. Got {args.target_ratio} instead.")
    names = list(dict.fromkeys(n.strip() for n in args.solvers.split(",") if n.strip()))
    if not names:
        raise _UsageError(f"--solvers must name at least one backend. Got {args.solvers!r}.")
    solvers = _bench_solver_options(args, names)
    if args.plot is not None:
        # Fail before solving anything when matplotlib is missing.
        from qopt._optional import import_optional

        import_optional("matplotlib", "plot", purpose="qopt bench --plot")
        _writable_folder(Path(args.plot), "--plot")
    if args.json:
        if Path(args.json).is_dir():
            raise _UsageError(f"--json {args.json} is a folder; give a file name.")
        _writable_folder(Path(args.json).parent, "--json")
    comparisons: list[Comparison] = []
    summaries: list[Summary] = []
    for path in args.files:
        problem = load_problem(path, format=args.format)
        comparison = compare_solvers(
            problem, solvers, seeds=args.seeds, target_ratio=args.target_ratio
        )
        comparisons.append(comparison)
        summaries += comparison.summaries
        out.write(
            f"{problem.name}: target {comparison.target:g} = {args.target_ratio:g} x "
            f"{comparison.reference_source} {comparison.reference:g}\n"
        )
    out.write(format_table(summaries) + "\n")
    out.write(
        f"{args.seeds} seeds per solver; median with [min, max]; P(hit) = runs reaching the target;\n"
    )
    out.write("TTS99/ETS99 = time/energy to reach the target with 99% confidence.\n")
    if args.json:
        write_results(
            args.json,
            {
                "summaries": [s.to_dict() for s in summaries],
                "trials": [asdict(t) for c in comparisons for t in c.trials],
            },
        )
        out.write(f"raw results written to {args.json}\n")
    if args.plot is not None:
        folder = Path(args.plot)
        written = [folder / "bench-quality-vs-time.png"]
        plot_quality_vs_time(comparisons, written[0])
        if len({s.num_variables for s in summaries}) > 1:
            written.append(folder / "bench-tts-vs-size.png")
            plot_tts_vs_size(comparisons, written[1])
        else:
            out.write("one problem size only: no TTS-vs-size plot\n")
        out.write(f"plots written: {', '.join(str(p) for p in written)}\n")
    return 0


def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from qopt.demo import run_demo

    return run_demo(out, quick=args.quick, seed=args.seed)


def _breakeven(args: argparse.Namespace, out: TextIO) -> int:
    from qopt.circuits.cli import breakeven_command

    return breakeven_command(args, out)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qopt",
        description="Quantum and quantum-inspired optimizers for the hard discrete decisions of training loops.",
    )
    from qopt import __version__

    parser.add_argument("--version", action="version", version=f"qopt {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    solvers = commands.add_parser(
        "solvers", help="list backends, whether they are ready here, their limits"
    )
    solvers.add_argument("--json", action="store_true", help="machine-readable output")
    solvers.set_defaults(run=_solvers)

    solve = commands.add_parser(
        "solve", help="solve a problem file (dimod JSON, COO, G-set MaxCut, Beasley QUBO)"
    )
    solve.add_argument("file", help="the problem file")
    solve.add_argument(
        "--solver", default="sa", help="backend name (see 'qopt solvers'); default: sa"
    )
    solve.add_argument(
        "--format",
        choices=["json", "coo", "maxcut", "beasley"],
        help="file format (default: from the name)",
    )
    solve.add_argument("--reads", type=int, help="samples per solve (the solver's num_reads)")
    solve.add_argument(
        "--time-limit",
        type=float,
        metavar="S",
        help="keep solving in rounds for S seconds; report the best",
    )
    solve.add_argument("--seed", type=int, help="random seed")
    solve.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="a solver option, as get_solver takes it (repeatable; the value is JSON or YAML): "
        "--option num_sweeps=500 --option decompose=true",
    )
    solve.add_argument(
        "--best-known",
        type=float,
        help="reference objective (default: best_known.csv beside the file)",
    )
    solve.add_argument("--sample", action="store_true", help="also print the best sample")
    solve.add_argument("--json", action="store_true", help="machine-readable output")
    solve.set_defaults(run=_solve)

    bench = commands.add_parser(
        "bench", help="quality / time-to-solution / energy-to-solution table for problem files"
    )
    bench.add_argument("files", nargs="+", help="problem files")
    bench.add_argument(
        "--solvers",
        default="sa,tabu,steepest",
        help="comma-separated backends (default: sa,tabu,steepest)",
    )
    bench.add_argument("--seeds", type=int, default=5, help="runs per solver (default: 5)")
    bench.add_argument(
        "--option",
        action="append",
        metavar="[SOLVER:]KEY=VALUE",
        help="a solver option, as get_solver takes it (repeatable; the value is JSON or YAML), "
        "for every solver or for SOLVER only: --option sa:num_sweeps=500",
    )
    bench.add_argument(
        "--target-ratio", type=float, default=1.0, help="target = ratio x reference (default: 1.0)"
    )
    bench.add_argument(
        "--format",
        choices=["json", "coo", "maxcut", "beasley"],
        help="file format (default: from the name)",
    )
    bench.add_argument("--json", metavar="PATH", help="also write raw results to PATH")
    bench.add_argument(
        "--plot",
        metavar="DIR",
        help="also write PNG plots to DIR: bench-quality-vs-time.png, and "
        "bench-tts-vs-size.png when the files have several sizes (needs qopt-loop[plot])",
    )
    bench.set_defaults(run=_bench)

    from qopt.nas.cli import add_nas_parser

    add_nas_parser(commands)

    demo = commands.add_parser("demo", help="qopt end to end on the embedded default solver")
    demo.add_argument("--quick", action="store_true", help="smaller problems, for a fast check")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(run=_demo)

    breakeven = commands.add_parser(
        "breakeven",
        help="qubits where simulating the quantum head's training step costs as much energy "
        "as a QPU (modelled from the inputs you give)",
    )
    qpu = breakeven.add_argument_group("QPU energy model (required: no default is citable)")
    qpu.add_argument("--qpu-watts", type=float, required=True, help="system wall-plug power, W")
    qpu.add_argument("--shot-seconds", type=float, required=True, help="seconds per shot")
    qpu.add_argument(
        "--job-overhead-seconds", type=float, required=True, help="QPU seconds per job beyond shots"
    )
    qpu.add_argument("--shots", type=int, default=1000, help="shots per circuit (default: 1000)")
    breakeven.add_argument(
        "--range",
        action="append",
        metavar="NAME=LOW:HIGH",
        help="uncertainty of a QPU input (repeatable): --range system_watts=10000:50000",
    )
    breakeven.add_argument(
        "--qubits", type=int, nargs="+", default=[4, 6, 8, 10, 12], help="qubit counts to measure"
    )
    breakeven.add_argument("--batch", type=int, default=32, help="examples per step (default: 32)")
    breakeven.add_argument("--layers", type=int, default=2, help="ansatz layers (default: 2)")
    breakeven.add_argument("--repeats", type=int, default=3, help="steps metered per count")
    breakeven.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    breakeven.add_argument("--fit-from", type=int, help="fit qubit counts from this one up")
    breakeven.add_argument(
        "--no-classical",
        action="store_true",
        help="skip the classical reference (logistic regression vs the head on breast cancer)",
    )
    breakeven.add_argument("--json", metavar="PATH", help="also write raw results to PATH")
    breakeven.add_argument("--plot", metavar="PATH", help="also write qubits vs joules to PATH")
    breakeven.set_defaults(run=_breakeven)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 usage or input error)."""
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args, out))
    except QoptError as error:
        message = str(error)
        if isinstance(error, ProblemTooLargeError) and args.command in ("solve", "bench"):
            message += (
                " On the command line, decompose it with --option decompose=true (subproblem "
                "settings: --option 'decompose={subproblem_size: 12}'), or choose another --solver."
            )
        print(f"qopt {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
