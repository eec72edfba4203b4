"""Generated keyword values for every public solver constructor, and hostile biases into the
native samplers (in a subprocess: a native abort must show as an exit code, not kill pytest)."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
import textwrap
from typing import Any

import dimod
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qopt.exceptions import QoptError
from qopt.solvers import (
    DecompositionSolver,
    ExactSolver,
    FallbackComposite,
    MeteredComposite,
    SimulatedAnnealingSolver,
    SteepestDescentSolver,
    TabuSolver,
    get_solver,
)

FUZZ = settings(max_examples=30, deadline=None)

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, 1, 2, 2**31, 2**32, 2**63, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(allow_nan=True)), max_size=3),
    st.dictionaries(st.sampled_from(["subproblem_size", "seed", "foo"]), st.integers(-3, 40)),
)

BQM = dimod.generators.ran_r(3, 12, seed=0)


def keywords(cls: Any) -> list[str]:
    return [
        name
        for name, p in inspect.signature(cls).parameters.items()
        if p.kind is p.KEYWORD_ONLY and name != "child"
    ]


FAST: list[Any] = [SimulatedAnnealingSolver, TabuSolver, SteepestDescentSolver, ExactSolver]
CONSTRUCTORS = list(FAST)
if importlib.util.find_spec("torch") is not None:
    from qopt.solvers.qaoa import QAOASolver

    CONSTRUCTORS.append(QAOASolver)


def build_or_refuse(factory: Any, kwargs: dict[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except QoptError as error:
        assert str(error)
        return None


@pytest.mark.parametrize("cls", CONSTRUCTORS, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_local_solver_constructors(cls: Any, data: st.DataObject) -> None:
    names = data.draw(st.lists(st.sampled_from(keywords(cls)), unique=True, max_size=3))
    kwargs = {name: data.draw(values, label=name) for name in names}
    solver = build_or_refuse(cls, kwargs)
    small = all(not isinstance(v, int) or v <= 1000 for v in kwargs.values())  # counts: work
    if solver is not None and cls in FAST and small:
        # What was accepted also solves, or refuses the problem with a QoptError (QAOA's
        # accepted settings can take seconds: not solved here).
        unseeded_tabu = cls is TabuSolver and kwargs.get("seed") is None
        try:
            result = solver.sample(BQM, **({"timeout": 5} if unseeded_tabu else {}))
        except QoptError as error:
            assert str(error)
        else:
            assert len(result) >= 1


@FUZZ
@given(data=st.data())
def test_decomposition_and_composites(data: st.DataObject) -> None:
    names = data.draw(
        st.lists(st.sampled_from(keywords(DecompositionSolver)), unique=True, max_size=3)
    )
    kwargs = {name: data.draw(values, label=name) for name in names}
    kwargs.pop("time_limit", None)  # a generated time limit could be hours long
    build_or_refuse(lambda **kw: DecompositionSolver(SteepestDescentSolver(seed=0), **kw), kwargs)
    build_or_refuse(
        lambda **kw: FallbackComposite(ExactSolver(), SimulatedAnnealingSolver(seed=0), **kw),
        {k: data.draw(values, label=k) for k in ("name", "fallback_name", "retry_after")},
    )
    build_or_refuse(lambda **kw: MeteredComposite(ExactSolver(), **kw), {"name": data.draw(values)})


@FUZZ
@given(
    name=st.sampled_from(["sa", "tabu", "steepest", "exact", "qaoa-qiskit", "dwave", "nope", 3]),
    data=st.data(),
)
def test_get_solver(name: Any, data: st.DataObject) -> None:
    keys = [
        "num_reads",
        "seed",
        "timeout",
        "max_variables",
        "decompose",
        "fallback",
        "retry_after",
        "defaults",
        "reps",
        "shots",
        "foo",
    ]
    names = data.draw(st.lists(st.sampled_from(keys), unique=True, max_size=3))
    kwargs = {k: data.draw(values, label=k) for k in names}
    build_or_refuse(lambda **kw: get_solver(name, **kw), kwargs)


SCRIPT = textwrap.dedent(
    """
    import sys, dimod
    from qopt.exceptions import QoptError
    from qopt.solvers import get_solver

    name, linear, quadratic = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    bqm = dimod.BinaryQuadraticModel({0: linear, 1: -linear, 2: 1.0},
                                     {(0, 1): quadratic, (1, 2): -quadratic}, 0.0, "BINARY")
    try:
        result = get_solver(name, seed=1).sample(bqm)
    except QoptError as error:
        print("refused:", type(error).__name__, error)
    else:
        energy = float(result.first.energy)
        print("solved:", energy)
        assert energy == energy, "a NaN energy"
    """
)


@pytest.mark.parametrize("name", ["sa", "tabu", "steepest"])
@pytest.mark.parametrize(
    ("linear", "quadratic"),
    [
        ("1e308", "1e308"),
        ("-1e308", "1e300"),
        ("1e200", "-1e200"),
        ("1e150", "1e-150"),
        ("5e-324", "1e308"),
        ("1e3", "1e3"),
    ],
)
def test_huge_biases_never_abort_a_native_sampler(name: str, linear: str, quadratic: str) -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, name, linear, quadratic],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-2000:]}"
    assert run.stdout.startswith(("refused: ", "solved: ")), run.stdout
    if run.stdout.startswith("refused: "):
        assert "InvalidProblemError" in run.stdout and "bias" in run.stdout


REMOTE: list[tuple[str, str]] = [
    ("qopt.solvers.dwave", "DWaveSolver"),
    ("qopt.solvers.dwave", "LeapHybridSolver"),
    ("qopt.solvers.qiskit_qaoa", "QiskitQAOASolver"),
]


@pytest.mark.parametrize(("module", "name"), REMOTE, ids=[n for _, n in REMOTE])
@FUZZ
@given(data=st.data())
def test_remote_and_qiskit_constructors(module: str, name: str, data: st.DataObject) -> None:
    # Built only, never sampled: construction connects to nothing. 'backend' and 'sampler'
    # take objects (an IBM backend name would be looked up online).
    pytest.importorskip(
        module.replace("qopt.solvers.dwave", "dwave.system").replace(
            "qopt.solvers.qiskit_qaoa", "qiskit_optimization"
        )
    )
    import importlib

    cls = getattr(importlib.import_module(module), name)
    allowed = [k for k in inspect.signature(cls).parameters if k not in ("backend", "sampler")]
    names = data.draw(st.lists(st.sampled_from(allowed), unique=True, max_size=3))
    build_or_refuse(cls, {k: data.draw(values, label=k) for k in names})
