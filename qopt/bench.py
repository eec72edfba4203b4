"""The quality / time-to-solution / energy-to-solution harness behind ``qopt bench`` and
every script under ``benchmarks/``.

A *trial* is one solve of one problem by one solver with one seed. A *summary* gathers the
trials of a (problem, solver) pair: median objective with its spread, the fraction of runs that
reach the target, and from that TTS99 and ETS99 (energy to solution at 99% confidence), with
the energy's provenance carried through.

The pieces, from the bottom up:

- :func:`metered_sample`: one metered solve of any sampler, its time and joules as a dict;
- :func:`run_trials`: one problem, one solver (a registry name or a factory of samplers),
  one trial per seed; :func:`summarize` and :func:`compare_solvers` on top;
- :func:`format_table` (summaries), :func:`format_runs_table` (median [min, max] of any
  columns of plain-dict rows, grouped), :func:`format_spread`;
- :func:`write_results`: JSON with :func:`machine_info` (machine, cores, Python, commit);
- :func:`plot_quality_vs_time` and :func:`plot_tts_vs_size` (matplotlib, the ``plot`` extra).

Examples:
    >>> import dimod
    >>> from qopt.bench import run_trials, summarize
    >>> from qopt.io import ProblemFile
    >>> bqm = dimod.generators.ran_r(1, 12, seed=0).change_vartype("BINARY", inplace=False)
    >>> problem = ProblemFile("ran12", "json", bqm, "min", best_known=None)
    >>> trials = run_trials(problem, "sa", seeds=range(3))
    >>> summary = summarize(trials, problem, target=min(t.objective for t in trials))
    >>> summary.runs, summary.success
    (3, 1.0)
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dimod

from qopt._optional import import_optional
from qopt.exceptions import InvalidProblemError, SolverConfigurationError, UnknownSolverError
from qopt.io import ProblemFile
from qopt.metering import SolveRecord
from qopt.pipeline import Solution, solve
from qopt.quality import gap_to_best_known, reaches_target, tts

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "Comparison",
    "Summary",
    "Trial",
    "compare_solvers",
    "format_runs_table",
    "format_spread",
    "format_table",
    "machine_info",
    "metered_sample",
    "plot_quality_vs_time",
    "plot_tts_vs_size",
    "results_path",
    "run_trials",
    "summarize",
    "write_results",
]


@dataclass(frozen=True)
class Trial:
    """One solve: its best objective and what it cost.

    ``info`` holds whatever the caller's ``extract`` read from the sample set (see
    :func:`run_trials`); ``num_variables`` is the problem's size.
    """

    problem: str
    solver: str
    seed: int
    objective: float
    wall_s: float
    cpu_s: float
    energy_j: float | None
    energy_provenance: str
    energy_method: str
    fallback: str | None
    mock: bool
    num_variables: int | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Summary:
    """The trials of one (problem, solver) pair, summarised."""

    problem: str
    solver: str
    runs: int
    target: float
    target_source: str
    best_known: float | None
    median_objective: float
    min_objective: float
    max_objective: float
    median_gap: float | None
    success: float
    median_wall_s: float | None
    tts99_s: float | None
    median_energy_j: float | None
    ets99_j: float | None
    energy_provenance: str
    fallbacks: int
    mock: bool
    num_variables: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _solve(
    sampler: dimod.Sampler, bqm: dimod.BinaryQuadraticModel, name: str, **parameters: Any
) -> Solution[Any]:
    """One solve of ``bqm`` through :func:`qopt.pipeline.solve`, metered under ``name``."""
    from qopt.solvers import MeteredComposite

    metered = (
        sampler if isinstance(sampler, MeteredComposite) else MeteredComposite(sampler, name=name)
    )
    # The pipeline takes 0/1 problems: a SPIN BQM is solved as its BINARY twin (same energies).
    binary = bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, False)
    return solve(binary, metered, **parameters)


def _cost(record: SolveRecord) -> dict[str, Any]:
    return {
        "wall_s": record.wall_s,
        "cpu_s": record.cpu_s,
        "energy_j": record.energy_j,
        "energy_provenance": record.energy_provenance,
        "energy_method": record.energy_method,
        "fallback": record.fallback,
        "mock": record.mock,
    }


def metered_sample(
    sampler: dimod.Sampler, bqm: dimod.BinaryQuadraticModel, *, name: str, **parameters: Any
) -> tuple[dimod.SampleSet, dict[str, Any]]:
    """Solve ``bqm`` once through :func:`qopt.pipeline.solve`, metered.

    A sampler that is already metered (what ``get_solver`` returns) is not wrapped again in a
    :class:`qopt.solvers.MeteredComposite`. A SPIN BQM is solved as its BINARY equivalent.

    Returns:
        The sample set (the solver's raw samples) and its cost: ``wall_s``, ``cpu_s``,
        ``energy_j``, ``energy_provenance``, ``energy_method``, ``fallback`` and ``mock``.

    Examples:
        >>> import dimod
        >>> from qopt.bench import metered_sample
        >>> from qopt.solvers import ExactSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY")
        >>> sampleset, cost = metered_sample(ExactSolver(), bqm, name="exact")
        >>> float(sampleset.first.energy), cost["energy_provenance"] in ("measured", "estimated")
        (-1.0, True)
    """
    solution = _solve(sampler, bqm, name, **parameters)
    return solution.sampleset, _cost(solution.record)


def run_trials(
    problem: ProblemFile,
    solver: str | Callable[[int], dimod.Sampler],
    *,
    seeds: Iterable[int],
    options: dict[str, Any] | None = None,
    name: str | None = None,
    extract: Callable[[dimod.SampleSet], dict[str, Any]] | None = None,
) -> list[Trial]:
    """Solve ``problem`` once per seed and record each solve as a :class:`Trial`.

    Args:
        problem: The problem.
        solver: A registry name, built per seed as
            ``get_solver(solver, defaults={"seed": seed}, **options)`` (the seed applies where
            the backend, its decomposition or its fallback has one), or a factory
            ``seed -> dimod.Sampler`` (a composite, a configured class, ...).
        seeds: One trial per seed.
        options: Options for ``get_solver`` (a name only).
        name: The solver's name in the trials; default the registry name (required with a
            factory).
        extract: Reads extra facts from each sample set into ``Trial.info`` (e.g. the
            starting energy of a decomposition).

    Examples:
        >>> import dimod
        >>> from qopt.bench import run_trials
        >>> from qopt.io import ProblemFile
        >>> from qopt.solvers import SteepestDescentSolver
        >>> bqm = dimod.generators.ran_r(1, 10, seed=1)
        >>> problem = ProblemFile("ran10", "json", bqm, "min", best_known=None)
        >>> trials = run_trials(
        ...     problem,
        ...     lambda seed: SteepestDescentSolver(num_reads=5, seed=seed),
        ...     seeds=[0, 1],
        ...     name="steepest",
        ...     extract=lambda s: {"reads": len(s)},
        ... )
        >>> [(t.solver, t.seed, t.info["reads"], t.num_variables) for t in trials]
        [('steepest', 0, 5, 10), ('steepest', 1, 5, 10)]
    """
    build: Callable[[int], dimod.Sampler]
    if isinstance(solver, str):
        from qopt.solvers import get_solver

        label, registry_name = name or solver, solver

        def build(seed: int) -> dimod.Sampler:
            return get_solver(registry_name, defaults={"seed": seed}, **(options or {}))

    else:
        if name is None:
            raise SolverConfigurationError(
                "run_trials needs a 'name' for a solver given as a factory."
            )
        if options:
            raise SolverConfigurationError(
                "The 'options' of run_trials apply to a registry name only; configure the "
                "factory instead."
            )
        label, build = name, solver
    trials = []
    for seed in seeds:
        solution = _solve(build(seed), problem.bqm, label)
        trials.append(
            Trial(
                problem=problem.name,
                solver=label,
                seed=seed,
                objective=problem.objective(solution.objective),
                num_variables=problem.bqm.num_variables,
                info=extract(solution.sampleset) if extract is not None else {},
                **_cost(solution.record),
            )
        )
    return trials


def summarize(
    trials: Sequence[Trial], problem: ProblemFile, *, target: float, target_source: str = "given"
) -> Summary:
    """Summarise the trials of one (problem, solver) pair against ``target``.

    Mock trials keep their quality but lose their times and joules: those are never reported.

    Examples:
        >>> import dimod
        >>> from qopt.bench import run_trials, summarize
        >>> from qopt.io import ProblemFile
        >>> bqm = dimod.generators.ran_r(1, 12, seed=0).change_vartype("BINARY", inplace=False)
        >>> problem = ProblemFile("ran12", "json", bqm, "min", best_known=None)
        >>> trials = run_trials(problem, "sa", seeds=range(3))
        >>> summary = summarize(trials, problem, target=min(t.objective for t in trials))
        >>> summary.runs, summary.success
        (3, 1.0)
    """
    if not trials:
        raise InvalidProblemError("summarize needs at least one trial; got none.")
    objectives = [t.objective for t in trials]
    success = sum(reaches_target(o, target, sense=problem.sense) for o in objectives) / len(trials)
    mock = any(t.mock for t in trials)
    wall = None if mock else statistics.median(t.wall_s for t in trials)
    joules = [t.energy_j for t in trials if t.energy_j is not None]
    energy = None if mock or not joules else statistics.median(joules)
    provenances = sorted({t.energy_provenance for t in trials})
    return Summary(
        problem=problem.name,
        solver=trials[0].solver,
        runs=len(trials),
        target=target,
        target_source=target_source,
        best_known=problem.best_known,
        median_objective=statistics.median(objectives),
        min_objective=min(objectives),
        max_objective=max(objectives),
        median_gap=None
        if not problem.best_known  # None, or zero: no relative gap
        else statistics.median(
            gap_to_best_known(o, problem.best_known, sense=problem.sense) for o in objectives
        ),
        success=success,
        median_wall_s=wall,
        tts99_s=None if wall is None else tts(wall, success),
        median_energy_j=energy,
        ets99_j=None if energy is None else tts(energy, success),
        energy_provenance="/".join(provenances),
        fallbacks=sum(t.fallback is not None for t in trials),
        mock=mock,
        num_variables=problem.bqm.num_variables,
    )


@dataclass(frozen=True)
class Comparison:
    """Several solvers on one problem against one target."""

    problem: str
    reference: float
    reference_source: str
    target: float
    summaries: list[Summary]
    trials: list[Trial]
    sense: str = "min"


def compare_solvers(
    problem: ProblemFile,
    solvers: Mapping[str, dict[str, Any] | Callable[[int], dimod.Sampler]],
    *,
    seeds: int,
    target_ratio: float = 1.0,
) -> Comparison:
    """Run every solver on ``problem`` and summarise them against a common target.

    The reference is the best-known value when the problem has one, otherwise the best value
    any of these solvers found (then say so when reporting). The target is
    ``target_ratio x reference``: a ratio of a cut for MaxCut, and for a minimum below zero
    likewise a fraction of it.

    Args:
        problem: The problem.
        solvers: Names mapped to ``get_solver`` options (the name is a registry name) or to a
            factory ``seed -> dimod.Sampler`` (any name); seeds are added per run.
        seeds: Runs per solver, seeded 0..seeds-1.
        target_ratio: In (0, 1].

    Examples:
        >>> import dimod
        >>> from qopt.bench import compare_solvers
        >>> from qopt.io import ProblemFile
        >>> bqm = dimod.generators.ran_r(1, 12, seed=0)
        >>> problem = ProblemFile("ran12", "json", bqm, "min", best_known=None)
        >>> comparison = compare_solvers(problem, {"sa": {}, "steepest": {}}, seeds=2)
        >>> [s.solver for s in comparison.summaries], comparison.reference_source
        (['sa', 'steepest'], 'best found by any solver here')
    """
    if not 0 < target_ratio <= 1:
        raise SolverConfigurationError(
            f"The 'target_ratio' parameter of compare_solvers must be in (0, 1]. Got "
            f"{target_ratio!r} instead."
        )
    runs = {
        name: run_trials(problem, spec, seeds=range(seeds), name=name)
        if callable(spec)
        else run_trials(problem, name, seeds=range(seeds), options=spec)
        for name, spec in solvers.items()
    }
    if problem.best_known is not None:
        reference, source = problem.best_known, "best known"
    else:
        pick = max if problem.sense == "max" else min
        reference = pick(t.objective for trials in runs.values() for t in trials)
        source = "best found by any solver here"
    target = reference * target_ratio
    return Comparison(
        problem=problem.name,
        reference=reference,
        reference_source=source,
        target=target,
        summaries=[
            summarize(t, problem, target=target, target_source=source) for t in runs.values()
        ],
        trials=[t for trials in runs.values() for t in trials],
        sense=problem.sense,
    )


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}{unit}"


def format_table(summaries: Sequence[Summary]) -> str:
    """A plain-text table, one row per (problem, solver).

    Examples:
        >>> from qopt.bench import Summary, format_table
        >>> row = Summary("p", "sa", 3, 10, "given", 10, 10, 10, 10, 0.0, 1.0, 0.2, 0.2,
        ...               2.0, 2.0, "estimated", 0, False)
        >>> print(format_table([row]).splitlines()[2])
        p          sa              3         10            [10, 10]   0.00%   1.00     0.2s     0.2s       2J       2J  estimated
    """
    header = (
        f"{'problem':<10} {'solver':<12} {'runs':>4} {'median':>10} {'[min, max]':>19} "
        f"{'gap':>7} {'P(hit)':>6} {'time':>8} {'TTS99':>8} {'joules':>8} {'ETS99':>8}  energy"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        gap = "n/a" if s.median_gap is None else f"{100 * s.median_gap:.2f}%"
        spread = f"[{s.min_objective:g}, {s.max_objective:g}]"
        provenance = "not reported (mock)" if s.mock else s.energy_provenance
        lines.append(
            f"{s.problem:<10} {s.solver:<12} {s.runs:>4} {s.median_objective:>10g} {spread:>19} "
            f"{gap:>7} {s.success:>6.2f} {_number(s.median_wall_s, 's'):>8} "
            f"{_number(s.tts99_s, 's'):>8} {_number(s.median_energy_j, 'J'):>8} "
            f"{_number(s.ets99_j, 'J'):>8}  {provenance}"
            + (f"  ({s.fallbacks} fallbacks)" if s.fallbacks else "")
        )
    return "\n".join(lines)


def format_spread(values: Iterable[float | None], digits: int = 4) -> str:
    """``median [min, max]`` of the values that are numbers (``None`` and NaN are skipped).

    Examples:
        >>> from qopt.bench import format_spread
        >>> format_spread([0.5, 0.25, None, 1.0]), format_spread([2, 2]), format_spread([None])
        ('0.5 [0.25, 1]', '2', 'n/a')
    """
    finite = [float(v) for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return "n/a"
    median, low, high = statistics.median(finite), min(finite), max(finite)
    if low == high:
        return f"{median:.{digits}g}"
    return f"{median:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def format_runs_table(
    rows: Sequence[Mapping[str, Any]], group_by: Sequence[str], columns: Sequence[str]
) -> str:
    """Median [min, max] of each column over the rows of each group, as plain text.

    Rows are plain dicts (one per run), e.g. ``dataclasses.asdict(trial)`` merged with its
    ``info``; a missing or ``None`` cell is skipped.

    Examples:
        >>> from qopt.bench import format_runs_table
        >>> rows = [{"n": 8, "time": 1.0}, {"n": 8, "time": 3.0}, {"n": 12, "time": 5.0}]
        >>> print(format_runs_table(rows, ["n"], ["time"]))
        n   runs  time
        ------------------
        8   2     2 [1, 3]
        12  1     5
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in group_by), []).append(row)
    header = [*group_by, "runs", *columns]
    lines = []
    for key, members in groups.items():
        cells = [str(k) for k in key] + [str(len(members))]
        cells += [format_spread(m.get(c) for m in members) for c in columns]
        lines.append(cells)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    body = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *lines]
    ]
    text = [body[0], "-" * max(len(line) for line in body), *body[1:]]
    return "\n".join(text)


def machine_info() -> dict[str, Any]:
    """What ran the benchmark: machine, Python, core count, and the commit.

    Examples:
        >>> from qopt.bench import machine_info
        >>> sorted(machine_info())
        ['commit', 'cores', 'cpu', 'machine', 'python']
    """
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
    }


def results_path(folder: str | os.PathLike[str], kind: str) -> Path:
    """``folder/<kind>-<YYYYmmdd-HHMMSS>.json``: a fresh results file name.

    Examples:
        >>> from qopt.bench import results_path
        >>> results_path("out", "qaoa-gset").name.startswith("qaoa-gset-")
        True
    """
    return Path(folder) / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}.json"


def write_results(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` as JSON to ``path`` with ``"machine"`` first.

    ``machine`` is :func:`machine_info` unless the payload brings its own (e.g. with torch's
    thread count added). Dataclasses inside (trials, summaries) are written as dicts.

    Examples:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> from qopt.bench import write_results
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = write_results(Path(folder) / "r.json", {"runs": [1, 2]})
        ...     data = json.loads(path.read_text())
        >>> data["runs"], "commit" in data["machine"]
        ([1, 2], True)
    """

    def default(value: Any) -> Any:
        if hasattr(value, "__dataclass_fields__"):
            return asdict(value)
        return float(value)

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": payload.get("machine") or machine_info(), **payload}
    target.write_text(json.dumps(document, indent=2, default=default))
    return target


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A results file as :func:`write_results` writes it, plain or gzip-compressed (``.gz``,
    as the published results under ``benchmarks/*/results/`` are committed).

    Examples:
        >>> import gzip, json, tempfile
        >>> from pathlib import Path
        >>> from qopt.bench import read_results
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "r.json.gz"
        ...     _ = path.write_bytes(gzip.compress(json.dumps({"runs": [1, 2]}).encode()))
        ...     read_results(path)["runs"]
        [1, 2]
    """
    source = Path(path)
    data = source.read_bytes()
    return dict(json.loads(gzip.decompress(data) if source.suffix == ".gz" else data))


def _matplotlib_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure drawn by the Agg backend, without pyplot's global state."""
    import_optional("matplotlib", "plot", purpose="qopt.bench plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _select_solvers(present: Sequence[str], solvers: Sequence[str] | None) -> list[str]:
    if solvers is None:
        return list(present)
    unknown = [s for s in solvers if s not in present]
    if unknown:
        raise UnknownSolverError(
            f"Solver {unknown[0]!r} is not in these results; they hold "
            f"{', '.join(repr(s) for s in present)}."
        )
    return list(solvers)


def _save(figure: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=80)


def plot_quality_vs_time(
    results: Sequence[Comparison | Trial],
    path: str | os.PathLike[str] | None = None,
    *,
    solvers: Sequence[str] | None = None,
) -> Figure:
    """Quality against time: one panel per problem, each solver's runs as points and their
    median as a large marker, the reference (best known, or best found) as a dashed line.

    Mock trials are left out: their timings are fake. Time is on a log axis.

    Args:
        results: :class:`Comparison` objects (from :func:`compare_solvers`) or trials.
        path: Where to write a PNG (folders are created); ``None``: only return the figure.
        solvers: Which solvers to draw, in this order; default all of them.

    Returns:
        The matplotlib ``Figure``; each drawn line has a ``gid`` naming what it shows:
        ``runs:<problem>:<solver>``, ``median:<problem>:<solver>`` and
        ``reference:<problem>``.

    Raises:
        InvalidProblemError: No timed trial to plot.
        UnknownSolverError: A solver in ``solvers`` is not in the results.
        MissingDependencyError: matplotlib is not installed (``pip install "qopt-loop[plot]"``).

    Examples:
        >>> import dimod
        >>> from qopt.bench import compare_solvers, plot_quality_vs_time
        >>> from qopt.io import ProblemFile
        >>> problem = ProblemFile("ran12", "json", dimod.generators.ran_r(1, 12, seed=0), "min")
        >>> figure = plot_quality_vs_time([compare_solvers(problem, {"sa": {}}, seeds=2)])
        >>> sorted(line.get_gid() for line in figure.axes[0].lines)
        ['median:ran12:sa', 'reference:ran12', 'runs:ran12:sa']
    """
    trials = [
        t
        for item in results
        for t in (item.trials if isinstance(item, Comparison) else [item])
        if not t.mock
    ]
    if not trials:
        raise InvalidProblemError(
            "plot_quality_vs_time needs at least one timed (non-mock) trial; got none."
        )
    present = list(dict.fromkeys(t.solver for t in trials))
    chosen = _select_solvers(present, solvers)
    references = {
        item.problem: (item.reference, item.reference_source)
        for item in results
        if isinstance(item, Comparison)
    }
    senses = {item.problem: item.sense for item in results if isinstance(item, Comparison)}
    better = {"min": " (lower is better)", "max": " (higher is better)"}
    problems = list(dict.fromkeys(t.problem for t in trials))
    columns = min(3, len(problems))
    rows = math.ceil(len(problems) / columns)
    figure = _matplotlib_figure(3.6 * columns + 0.6, 2.9 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    colours = {s: f"C{i % 10}" for i, s in enumerate(chosen)}
    for axis, problem in zip(axes, problems, strict=False):
        for solver in chosen:
            own = [t for t in trials if t.problem == problem and t.solver == solver]
            if not own:
                continue
            axis.plot(
                [t.wall_s for t in own],
                [t.objective for t in own],
                linestyle="none",
                marker="o",
                markersize=4,
                alpha=0.5,
                color=colours[solver],
                gid=f"runs:{problem}:{solver}",
            )
            axis.plot(
                [statistics.median(t.wall_s for t in own)],
                [statistics.median(t.objective for t in own)],
                linestyle="none",
                marker="D",
                markersize=8,
                markeredgecolor="black",
                color=colours[solver],
                label=f"{solver} (median)",
                gid=f"median:{problem}:{solver}",
            )
        if problem in references:
            value, source = references[problem]
            axis.axhline(
                value,
                linestyle="--",
                color="grey",
                linewidth=1,
                label=source,
                gid=f"reference:{problem}",
            )
        axis.set_xscale("log")
        axis.set_title(problem)
        axis.set_xlabel("wall time per run (s)")
        axis.set_ylabel("objective" + better.get(senses.get(problem, ""), ""))
        axis.legend(fontsize="small")
    for axis in axes[len(problems) :]:
        axis.set_visible(False)
    _save(figure, path)
    return figure


def plot_tts_vs_size(
    results: Sequence[Comparison | Summary],
    path: str | os.PathLike[str] | None = None,
    *,
    solvers: Sequence[str] | None = None,
) -> Figure:
    """TTS99 against problem size (variables), one line per solver, on a log time axis.

    Every (problem, solver) summary is a point; the line joins the median TTS99 per size.
    A size where the solver's median run never reached the target (infinite TTS99) has no
    point on the line and is named in the legend; mock summaries have no time and are left out.

    Args:
        results: :class:`Comparison` objects or summaries, of at least two problem sizes.
        path: Where to write a PNG (folders are created); ``None``: only return the figure.
        solvers: Which solvers to draw, in this order; default all of them.

    Returns:
        The matplotlib ``Figure``; its lines have gids ``points:<solver>`` and
        ``median:<solver>``.

    Raises:
        InvalidProblemError: No summary, summaries without a size, or a single size.
        UnknownSolverError: A solver in ``solvers`` is not in the results.
        MissingDependencyError: matplotlib is not installed (``pip install "qopt-loop[plot]"``).

    Examples:
        >>> import dimod
        >>> from qopt.bench import compare_solvers, plot_tts_vs_size
        >>> from qopt.io import ProblemFile
        >>> comparisons = [
        ...     compare_solvers(
        ...         ProblemFile(f"ran{n}", "json", dimod.generators.ran_r(1, n, seed=0), "min"),
        ...         {"sa": {}},
        ...         seeds=2,
        ...     )
        ...     for n in (8, 16)
        ... ]
        >>> figure = plot_tts_vs_size(comparisons)
        >>> [float(x) for x in figure.axes[0].lines[1].get_xdata()]
        [8.0, 16.0]
    """
    summaries = [
        s
        for item in results
        for s in (item.summaries if isinstance(item, Comparison) else [item])
        if not s.mock
    ]
    if not summaries:
        raise InvalidProblemError("plot_tts_vs_size needs at least one timed summary; got none.")
    if any(s.num_variables is None for s in summaries):
        raise InvalidProblemError(
            "plot_tts_vs_size needs each summary's num_variables (summaries made by "
            "qopt.bench.summarize carry it)."
        )
    sizes = sorted({int(s.num_variables or 0) for s in summaries})
    if len(sizes) < 2:
        raise InvalidProblemError(
            f"plot_tts_vs_size needs problems of at least two sizes; all have {sizes[0]} variables."
        )
    chosen = _select_solvers(list(dict.fromkeys(s.solver for s in summaries)), solvers)
    figure = _matplotlib_figure(5.5, 3.8)
    axis = figure.subplots()
    for i, solver in enumerate(chosen):
        own = [s for s in summaries if s.solver == solver]
        finite = [s for s in own if s.tts99_s is not None and math.isfinite(s.tts99_s)]
        colour = f"C{i % 10}"
        axis.plot(
            [float(s.num_variables or 0) for s in finite],
            [float(s.tts99_s or 0.0) for s in finite],
            linestyle="none",
            marker="o",
            markersize=4,
            alpha=0.5,
            color=colour,
            gid=f"points:{solver}",
        )
        line_x, line_y, missed = [], [], []
        for size in sizes:
            at = [s.tts99_s for s in own if s.num_variables == size and s.tts99_s is not None]
            if not at:
                continue
            median = statistics.median(at)
            if math.isfinite(median):
                line_x.append(size)
                line_y.append(median)
            else:
                missed.append(size)
        label = solver + (
            f" (target not reached at n = {', '.join(map(str, missed))})" if missed else ""
        )
        axis.plot(line_x, line_y, marker="s", color=colour, label=label, gid=f"median:{solver}")
    axis.set_yscale("log")
    axis.set_xlabel("problem size (variables)")
    axis.set_ylabel("TTS99 (s)")
    axis.set_title("time to reach the target with 99% confidence")
    axis.legend(fontsize="small")
    _save(figure, path)
    return figure
