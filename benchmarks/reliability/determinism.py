"""Same seed twice, same result: every local solver, the command line, and every searcher."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verdicts import NOT_REPRODUCIBLE, OK, Case, call, verdict

#: Figures of ``qopt solve --json`` that are measurements, not results.
TIMING = {"wall_s", "cpu_s", "energy_j", "energy_method"}


def problem(n: int, seed: int) -> Any:
    import dimod

    return dimod.generators.ran_r(5, n, seed=seed)


def rows(sampleset: Any) -> list[Any]:
    labels = list(sampleset.variables)
    return [
        (tuple(int(s[v]) for v in labels), float(e), int(k))
        for s, e, k in sampleset.data(["sample", "energy", "num_occurrences"], sorted_by=None)
    ]


def pair(name: str, run: Callable[[Path], Any], timeout_s: float = 120.0) -> Case:
    """Run twice and compare."""

    def judge(scratch: Path) -> dict[str, Any]:
        results: list[Any] = []
        for i in range(2):
            (scratch / str(i)).mkdir()
            outcome = call(lambda d=scratch / str(i): results.append(run(d)), "ok")
            if outcome["verdict"] != OK:
                return outcome
        if results[0] != results[1]:
            return verdict(NOT_REPRODUCIBLE, f"{str(results[0])[:200]} != {str(results[1])[:200]}")
        return verdict(OK, f"{str(results[0])[:120]}")

    return Case(f"determinism/{name}", judge, timeout_s)


def solver(name: str, options: dict[str, Any], n: int) -> Callable[[Path], Any]:
    def run(scratch: Path) -> Any:
        from qopt.solvers import get_solver

        return rows(get_solver(name, seed=11, **options).sample(problem(n, n)))

    return run


def decomposition(child: str) -> Callable[[Path], Any]:
    def run(scratch: Path) -> Any:
        from qopt.solvers import DecompositionSolver, TabuSolver
        from qopt.solvers.qaoa import QAOASolver

        inner = TabuSolver(seed=5) if child == "tabu" else QAOASolver(reps=1, maxiter=10, seed=5)
        solver = DecompositionSolver(inner, subproblem_size=8, max_iterations=8, seed=9)
        return rows(solver.sample(problem(40, 3)))

    return run


def command_line(name: str) -> Callable[[Path], Any]:
    def run(scratch: Path) -> Any:
        from qopt.cli import main

        path = scratch / "ring.txt"
        n = 60
        path.write_text(f"{n} {n}\n" + "".join(f"{i} {i % n + 1} 1\n" for i in range(1, n + 1)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(
                [
                    "solve",
                    str(path),
                    "--format",
                    "maxcut",
                    "--solver",
                    name,
                    "--seed",
                    "3",
                    "--json",
                ],
                out=out,
            )
        data = json.loads(out.getvalue())
        return code, {k: v for k, v in data.items() if k not in TIMING}

    return run


def qubo_search(solver_name: str) -> Callable[[Path], Any]:
    def run(scratch: Path) -> Any:
        from qopt.encoding import CategoricalParameter, IntParameter
        from qopt.search import QuboSearch

        search = QuboSearch(
            {"x": IntParameter(0, 7), "op": CategoricalParameter(("a", "b", "c"))},
            seed=3,
            n_startup_trials=4,
            solver=solver_name,
            surrogate_options={"n_epochs": 30},
        )
        asked = []
        for _ in range(8):
            point = search.ask()
            asked.append(point)
            search.tell(point, (point["x"] - 5) ** 2 + (point["op"] != "b"))
        return asked

    return run


def optuna_sampler(scratch: Path) -> Any:
    import optuna
    from qopt.integrations.optuna import QuboSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=QuboSampler(seed=4, n_startup_trials=4, surrogate_options={"n_epochs": 30})
    )
    study.optimize(
        lambda t: (t.suggest_int("x", -4, 4) - 1) ** 2 + t.suggest_float("y", 0.0, 1.0), n_trials=8
    )
    return [t.params for t in study.trials]


def nas(sampler: str) -> Callable[[Path], Any]:
    def run(scratch: Path) -> Any:
        from qopt.nas import run_search, status
        from tests.nas._harness import cell_score, cell_space

        run_search(
            cell_space("seeded"),
            run_dir=scratch / "run",
            sampler=sampler,
            n_trials=10,
            seed=5,
            objective=cell_score,
        )
        return [r["architecture"] for r in _evaluated(scratch / "run")] or status(scratch / "run")

    return run


def _evaluated(run_dir: Path) -> list[dict[str, Any]]:
    from qopt.nas import export

    return export(run_dir)


def cases() -> list[Case]:
    found = [
        pair("sa", solver("sa", {"num_reads": 4, "num_sweeps": 200}, 30)),
        pair("tabu", solver("tabu", {"num_reads": 2}, 60)),
        pair("tabu-timeout-1ms", solver("tabu", {"num_reads": 2, "timeout": 1}, 200)),
        pair("steepest", solver("steepest", {"num_reads": 4}, 30)),
        pair("qaoa", solver("qaoa", {"reps": 1, "maxiter": 10}, 6)),
        pair("qaoa-qiskit", solver("qaoa-qiskit", {"reps": 1, "maxiter": 15}, 5)),
        pair(
            "sa-decompose",
            solver(
                "sa",
                {"num_sweeps": 50, "decompose": {"subproblem_size": 8, "max_iterations": 30}},
                40,
            ),
        ),
        pair("decomposition-tabu-child", decomposition("tabu")),
        pair("decomposition-qaoa-child", decomposition("qaoa"), 240.0),
        pair("cli-solve-sa", command_line("sa")),
        pair("cli-solve-tabu", command_line("tabu")),
        pair("cli-solve-steepest", command_line("steepest")),
        pair("qubo-search-sa", qubo_search("sa")),
        pair("qubo-search-tabu", qubo_search("tabu")),
        pair("optuna-qubo-sampler", optuna_sampler),
    ]
    for sampler in ("qubo", "random", "evolution", "local", "tpe", "nsga2"):
        found.append(pair(f"nas-{sampler}", nas(sampler), 240.0))
    return found
