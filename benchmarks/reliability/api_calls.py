"""Hostile Python API calls: constructors and solve calls of the public classes with bad
arguments, hostile problems (1e308, NaN, inf biases), misspelled constraint names, NaN costs."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verdicts import Case, Expect, call, finite_energy


def api(
    name: str,
    fn: Callable[[], Any],
    expect: Expect = "error",
    check: Callable[[Any], str | None] | None = None,
    timeout_s: float = 60.0,
) -> Case:
    def run(scratch: Path) -> dict[str, Any]:
        return call(fn, expect, check)

    return Case(f"api/{name}", run, timeout_s)


def bqm(linear: dict[Any, float], quadratic: dict[tuple[Any, Any], float]) -> Any:
    import dimod

    return dimod.BinaryQuadraticModel(linear, quadratic, 0.0, "BINARY")


def ring(n: int) -> Any:
    return bqm({i: -1.0 for i in range(n)}, {(i, (i + 1) % n): 2.0 for i in range(n)})


def solver_class(name: str) -> Any:
    import qopt.solvers as solvers

    return getattr(solvers, name)


def constrained_search(constraint: Any) -> Any:
    """A QuboSearch over ``width`` and ``op`` with one constraint, asked once."""
    from qopt.encoding import CategoricalParameter, IntParameter
    from qopt.search import QuboSearch

    search = QuboSearch(
        {"width": IntParameter(1, 8), "op": CategoricalParameter(("a", "b"))},
        constraints=[constraint],
        seed=0,
        n_startup_trials=2,
    )
    return search.ask()


def sampler_study(constraint: Any, n_trials: int = 6) -> Any:
    """A QuboSampler study with one constraint: returns the trials' params."""
    import optuna
    from qopt.integrations.optuna import QuboSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=QuboSampler(constraints=[constraint], seed=0, n_startup_trials=3)
    )
    study.optimize(lambda t: float(t.suggest_int("width", 1, 8)), n_trials=n_trials)
    return [t.params for t in study.trials]


def within(limit: float) -> Callable[[Any], str | None]:
    def check(trials: Any) -> str | None:
        over = [p for p in trials if p.get("width", 0) > limit]
        return f"{len(over)} trials over the constraint" if over else None

    return check


def cases() -> list[Case]:
    from qopt.encoding import (
        CategoricalParameter,
        FloatParameter,
        IntParameter,
        ParameterConstraint,
        SpaceEncoding,
    )
    from qopt.solvers import (
        DecompositionSolver,
        FallbackComposite,
        SteepestDescentSolver,
        get_solver,
    )

    found: list[Case] = []
    # Local solver constructors with bad arguments.
    bad_options: dict[str, Any] = {
        "num_reads=0": {"num_reads": 0},
        "num_reads=-3": {"num_reads": -3},
        "num_reads='x'": {"num_reads": "x"},
        "num_reads=1.5": {"num_reads": 1.5},
        "seed=-1": {"seed": -1},
        "seed=2**32": {"seed": 2**32},
    }
    for cls in ("SimulatedAnnealingSolver", "TabuSolver", "SteepestDescentSolver"):
        for label, options in bad_options.items():
            found.append(api(f"{cls}({label})", lambda c=cls, o=options: solver_class(c)(**o)))
    found.append(
        api("SimulatedAnnealingSolver(num_sweeps='x')", lambda: get_solver("sa", num_sweeps="x"))
    )
    found.append(api("TabuSolver(timeout=-1)", lambda: get_solver("tabu", timeout=-1)))
    # sample() with bad keyword arguments.
    calls: dict[str, tuple[str, dict[str, Any]]] = {
        "sa.sample(num_reads=-3)": ("sa", {"num_reads": -3}),
        "sa.sample(num_sweeps='x')": ("sa", {"num_sweeps": "x"}),
        "sa.sample(foo=1)": ("sa", {"foo": 1}),
        "sa.sample(seed=-5)": ("sa", {"seed": -5}),
        "sa.sample(beta_range=(0,-1))": ("sa", {"beta_range": (0, -1)}),
        "tabu.sample(num_restarts=-1)": ("tabu", {"num_restarts": -1}),
        "steepest.sample(num_reads=0)": ("steepest", {"num_reads": 0}),
        "exact.sample(num_reads=3)": ("exact", {"num_reads": 3}),
    }
    for label, (name, kwargs) in calls.items():
        found.append(api(label, lambda n=name, k=kwargs: _seeded(n).sample(ring(6), **k)))
    # Hostile problems: refused before native code, never a NaN or infinite energy.
    hostile = {
        "1e308": bqm({0: 1e308, 1: 1e308}, {(0, 1): -1e308}),
        "nan": bqm({0: math.nan, 1: 1.0}, {(0, 1): 1.0}),
        "inf": bqm({0: math.inf, 1: 1.0}, {(0, 1): 1.0}),
    }
    for label, problem in hostile.items():
        for name in ("sa", "tabu", "steepest"):
            found.append(
                api(
                    f"{name}.sample({label} biases)",
                    lambda n=name, p=problem: get_solver(n, seed=1).sample(p),
                )
            )
    for name in ("sa", "tabu", "steepest", "exact"):
        found.append(
            api(
                f"{name}.sample(empty BQM)",
                lambda n=name: get_solver(n).sample(bqm({}, {})),
                "any",
            )
        )
    found.append(
        api(
            "sa.sample(mixed labels)",
            lambda: get_solver("sa", seed=1).sample(
                bqm({"a": -1.0, 2: -1.0, (3, "x"): 1.0}, {("a", 2): 2.0})
            ),
            "ok",
            finite_energy,
        )
    )
    # The registry.
    registry: dict[str, Callable[[], Any]] = {
        "get_solver('nope')": lambda: get_solver("nope"),
        "get_solver('sa', foo=1)": lambda: get_solver("sa", foo=1),
        "get_solver('sa', decompose={'foo': 1})": lambda: get_solver("sa", decompose={"foo": 1}),
        "get_solver('sa', decompose='yes')": lambda: get_solver("sa", decompose="yes"),
        "get_solver('sa', defaults=True)": lambda: get_solver("sa", defaults=True),
        "get_solver('dwave', fallback='nope')": lambda: get_solver("dwave", fallback="nope"),
        "get_solver('qaoa', reps=0)": lambda: get_solver("qaoa", reps=0),
        "get_solver('qaoa', max_qubits=-1)": lambda: get_solver("qaoa", max_qubits=-1),
        "exact.sample(40 variables)": lambda: get_solver("exact").sample(ring(40)),
        "qaoa.sample(60 qubits)": lambda: get_solver("qaoa", seed=0).sample(ring(60)),
        "qaoa-qiskit.sample(60 qubits)": lambda: get_solver("qaoa-qiskit", seed=0).sample(ring(60)),
    }
    for label, fn in registry.items():
        found.append(api(label, fn))
    # Composites.
    found.append(api("DecompositionSolver(child='x')", lambda: DecompositionSolver("x")))  # type: ignore[arg-type]
    found.append(
        api(
            "DecompositionSolver(subproblem_size=0)",
            lambda: DecompositionSolver(SteepestDescentSolver(), subproblem_size=0),
        )
    )
    found.append(
        api(
            "DecompositionSolver(tabu_moves=0, repairs=0)",
            lambda: DecompositionSolver(SteepestDescentSolver(), tabu_moves=0, repairs=0),
        )
    )
    found.append(
        api(
            "DecompositionSolver(tenure=(5, 2))",
            lambda: DecompositionSolver(SteepestDescentSolver(), tenure=(5, 2)),
        )
    )
    found.append(
        api(
            "DecompositionSolver(seed=1, time_limit=1)",
            lambda: DecompositionSolver(SteepestDescentSolver(), seed=1, time_limit=1.0),
        )
    )
    found.append(
        api(
            "FallbackComposite(child='x')",
            lambda: FallbackComposite(
                "x", SteepestDescentSolver(), name="x", fallback_name="steepest"
            ),  # type: ignore[arg-type]
        )
    )
    found.append(
        api(
            "FallbackComposite(retry_after=-1)",
            lambda: FallbackComposite(
                SteepestDescentSolver(),
                SteepestDescentSolver(),
                name="a",
                fallback_name="b",
                retry_after=-1,
            ),
        )
    )
    # Encodings and constraints.
    encodings: dict[str, Callable[[], Any]] = {
        "IntParameter(5, 1)": lambda: IntParameter(5, 1),
        "IntParameter(0, 10, step=0)": lambda: IntParameter(0, 10, step=0),
        "FloatParameter(0, nan)": lambda: FloatParameter(0.0, math.nan),
        "FloatParameter(0, 1, log=True)": lambda: FloatParameter(0.0, 1.0, log=True),
        "CategoricalParameter(())": lambda: CategoricalParameter(()),
        "ParameterConstraint(NaN cost)": lambda: ParameterConstraint({"width": math.nan}, ub=4),
        "ParameterConstraint(ub=nan)": lambda: ParameterConstraint({"width": 1.0}, ub=math.nan),
        "ParameterConstraint(lb > ub)": lambda: ParameterConstraint({"width": 1.0}, lb=5, ub=1),
        "ParameterConstraint(term 'x')": lambda: ParameterConstraint({"width": "x"}, ub=4),  # type: ignore[dict-item]
        "SpaceEncoding(misspelled constraint)": lambda: SpaceEncoding(
            {"width": IntParameter(1, 8)}, constraints=[ParameterConstraint({"widht": 1.0}, ub=4)]
        ),
        "SpaceEncoding(unknown cost value)": lambda: SpaceEncoding(
            {"op": CategoricalParameter(("a", "b"))},
            constraints=[ParameterConstraint({"op": {"c": 1.0}}, ub=0.5)],
        ),
    }
    for label, fn in encodings.items():
        found.append(api(label, fn))
    # Repeated choices decode to the same value whichever bit is on: accepted, never wrong.
    found.append(
        api("CategoricalParameter(('a', 'a'))", lambda: CategoricalParameter(("a", "a")), "any")
    )
    found.append(
        api(
            "QuboSearch(misspelled constraint)",
            lambda: constrained_search(ParameterConstraint({"widht": 1.0}, ub=4)),
        )
    )
    found.append(
        api(
            "QuboSampler(misspelled constraint)",
            lambda: sampler_study(ParameterConstraint({"widht": 1.0}, ub=4)),
        )
    )
    found.append(
        api(
            "QuboSampler(constraint kept)",
            lambda: sampler_study(ParameterConstraint({"width": 1.0}, ub=4), n_trials=10),
            "ok",
            within(4),
            timeout_s=120,
        )
    )
    # The Optuna sampler and the ask/tell search.
    sampler: dict[str, dict[str, Any]] = {
        "QuboSampler(foo=1)": {"foo": 1},
        "QuboSampler(solver='nope')": {"solver": "nope"},
        "QuboSampler(n_startup_trials=-1)": {"n_startup_trials": -1},
        "QuboSampler(trust_region=-2)": {"trust_region": -2},
        "QuboSampler(encoding='bogus')": {"encoding": "bogus"},
        "QuboSampler(surrogate='bogus')": {"surrogate": "bogus"},
        "QuboSampler(n_bins=0)": {"n_bins": 0},
    }
    for label, kwargs in sampler.items():
        found.append(api(label, lambda k=kwargs: _quboSampler(**k)))
    # Option values are checked when the solver is built (names at construction): the first
    # model proposal raises the clear error, the study does not go on without it.
    found.append(api("QuboSampler(solver_options={'num_sweeps': 'x'}) study", _bad_option_study))
    search: dict[str, Callable[[], Any]] = {
        "QuboSearch(directions=['up'])": lambda: _search(
            {"x": IntParameter(0, 3)}, directions=["up"]
        ),
        "QuboSearch(seed='a')": lambda: _search({"x": IntParameter(0, 3)}, seed="a"),
        "QuboSearch.tell(unknown point)": lambda: _search({"x": IntParameter(0, 3)}).tell(
            {"y": 1}, 1.0
        ),
        "QuboSearch.tell(3 values, 1 objective)": lambda: _search({"x": IntParameter(0, 3)}).tell(
            {"x": 1}, [1.0, 2.0, 3.0]
        ),
    }
    for label, fn in search.items():
        found.append(api(label, fn))
    found.append(api("QuboSearch({}).ask()", lambda: _search({}).ask(), "any"))  # the empty point
    # Architecture search.
    from qopt.nas import Budget, Choice, Objective, SearchSpace, run_search

    def space(**kwargs: Any) -> Any:
        return SearchSpace([Choice.integers("w", 1, 4)], objectives=[Objective("loss")], **kwargs)

    nas: dict[str, Callable[[], Any]] = {
        "Choice(kind='weird')": lambda: Choice("x", "weird", (1, 2)),
        "Choice(values=())": lambda: Choice("x", "categorical", ()),
        "Budget(NaN cost)": lambda: space(budgets=[Budget("b", 3.0, costs={"w": {1: math.nan}})]),
        "Budget(max=-1)": lambda: space(budgets=[Budget("b", -1.0, costs={"w": {1: 1.0}})]),
        "Budget(cost of unknown choice)": lambda: space(
            budgets=[Budget("b", 3.0, costs={"v": {1: 1.0}})]
        ),
        "SearchSpace(duplicate names)": lambda: SearchSpace(
            [Choice.integers("w", 1, 4), Choice.integers("w", 1, 2)], objectives=[Objective("loss")]
        ),
        "run_search(n_trials=0)": lambda: run_search(space(), n_trials=0, objective=lambda a: 1.0),
        "run_search(workers=0)": lambda: run_search(space(), workers=0, objective=lambda a: 1.0),
        "run_search(sampler='bogus')": lambda: run_search(
            space(), sampler="bogus", objective=lambda a: 1.0
        ),
    }
    for label, fn in nas.items():
        found.append(api(label, fn))
    # Training-loop components.
    found.append(api("MoE(num_experts=0)", lambda: _moe(8, 0)))
    found.append(api("MoE(top_k > experts)", lambda: _moe(8, 2, top_k=3)))
    found.append(api("QuboRoutingCallback(solver='nope')", lambda: _routing(solver="nope")))
    found.append(api("QuboRoutingCallback(group_size=0)", lambda: _routing(group_size=0)))
    found.append(api("QuboPruningCallback(target_ratio=1.5)", lambda: _pruning(target_ratio=1.5)))
    return found


def _seeded(name: str) -> Any:
    from qopt.solvers import get_solver

    return get_solver(name) if name == "exact" else get_solver(name, seed=1)


def _quboSampler(**kwargs: Any) -> Any:
    from qopt.integrations.optuna import QuboSampler

    return QuboSampler(**kwargs)


def _bad_option_study() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.CRITICAL)
    sampler = _quboSampler(solver_options={"num_sweeps": "x"}, n_startup_trials=2)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: float(t.suggest_int("x", 0, 5)), n_trials=4)
    return [t.state for t in study.trials]


def _search(parameters: Any, **kwargs: Any) -> Any:
    from qopt.search import QuboSearch

    return QuboSearch(parameters, **kwargs)


def _moe(d_model: int, num_experts: int, **kwargs: Any) -> Any:
    from qopt.moe import MoE

    return MoE(d_model, num_experts, **kwargs)


def _routing(**kwargs: Any) -> Any:
    from qopt.integrations.lightning import QuboRoutingCallback

    return QuboRoutingCallback(**kwargs)


def _pruning(**kwargs: Any) -> Any:
    from qopt.integrations.lightning import QuboPruningCallback

    return QuboPruningCallback(**kwargs)
