"""Local classical backends: dwave-samplers' C++ heuristics and dimod's exhaustive search.

Each class is a thin :class:`dimod.Sampler` over its upstream sampler. It holds the defaults a
qopt user gets from ``get_solver(name)`` (checked at construction), and checks each BQM at call
time; any upstream parameter can still be passed to :meth:`sample`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import dimod

from qopt._validation import check_bqm, check_int
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError

__all__ = [
    "ExactSolver",
    "SimulatedAnnealingSolver",
    "SteepestDescentSolver",
    "TabuSolver",
]


class _UpstreamSolver(dimod.Sampler):
    """A dimod sampler that forwards to an upstream sampler with qopt's defaults."""

    #: Registry name, used in messages and solve records.
    name: ClassVar[str]

    def __init__(self, upstream: dimod.Sampler, defaults: dict[str, Any]) -> None:
        self._upstream = upstream
        self._defaults = {k: v for k, v in defaults.items() if v is not None}

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return dict(self._upstream.parameters)

    @property
    def properties(self) -> dict[str, Any]:
        return {"name": self.name, "defaults": dict(self._defaults), **self._upstream.properties}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        check_bqm(bqm, type(self).__name__, allow_empty=True)
        unknown = set(parameters) - set(self.parameters)
        if unknown:
            raise SolverConfigurationError(
                f"{type(self).__name__}.sample() got unknown parameter(s) {sorted(unknown)}. "
                f"Its parameters are: {', '.join(sorted(self.parameters))}."
            )
        return self._upstream.sample(bqm, **{**self._defaults, **parameters})


class SimulatedAnnealingSolver(_UpstreamSolver):
    """Simulated annealing (dwave-samplers), qopt's embedded default solver.

    Args:
        num_reads: Independent annealing runs per solve.
        num_sweeps: Sweeps over all variables per run; more sweeps, better minima, more time.
        seed: Seed for reproducible samples; ``None`` draws one.

    Reference: Kirkpatrick, Gelatt & Vecchi, "Optimization by simulated annealing",
    Science 220 (1983).

    Examples:
        >>> import dimod
        >>> from qopt.solvers import SimulatedAnnealingSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> float(SimulatedAnnealingSolver(seed=1).sample(bqm).first.energy)
        -1.0
    """

    name = "sa"

    def __init__(self, *, num_reads: int = 10, num_sweeps: int = 1000, seed: int | None = None):
        from dwave.samplers import SimulatedAnnealingSampler

        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        super().__init__(
            SimulatedAnnealingSampler(),
            {"num_reads": self.num_reads, "num_sweeps": self.num_sweeps, "seed": self.seed},
        )


class TabuSolver(_UpstreamSolver):
    """Multistart tabu search (dwave-samplers).

    Args:
        num_reads: Independent tabu runs per solve.
        timeout: Milliseconds each run may search.
        seed: Seed for reproducible samples; ``None`` draws one.

    Reference: Palubeckis, "Multistart tabu search strategies for the unconstrained binary
    quadratic optimization problem", Annals of Operations Research 131 (2004).

    Examples:
        >>> import dimod
        >>> from qopt.solvers import TabuSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> float(TabuSolver(timeout=20, seed=1).sample(bqm).first.energy)
        -1.0
    """

    name = "tabu"

    def __init__(self, *, num_reads: int = 1, timeout: int = 100, seed: int | None = None):
        from dwave.samplers import TabuSampler

        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.timeout = check_int(timeout, "timeout", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        super().__init__(
            TabuSampler(),
            {"num_reads": self.num_reads, "timeout": self.timeout, "seed": self.seed},
        )


class SteepestDescentSolver(_UpstreamSolver):
    """Steepest greedy descent from random starts (dwave-samplers): fast, local minima only.

    Args:
        num_reads: Random starting states, each descended to a local minimum.
        seed: Seed for reproducible samples; ``None`` draws one.

    Examples:
        >>> import dimod
        >>> from qopt.solvers import SteepestDescentSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY")
        >>> float(SteepestDescentSolver(seed=1).sample(bqm).first.energy)
        -1.0
    """

    name = "steepest"

    def __init__(self, *, num_reads: int = 10, seed: int | None = None):
        from dwave.samplers import SteepestDescentSolver as Upstream

        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        super().__init__(Upstream(), {"num_reads": self.num_reads, "seed": self.seed})


class ExactSolver(_UpstreamSolver):
    """Exhaustive search over all 2^n states (dimod): the true optimum, for small problems.

    Args:
        max_variables: Largest BQM accepted. Memory and time grow as 2^n; the default, 24,
            enumerates about 17 million states.

    Raises:
        ProblemTooLargeError: At :meth:`sample` time, for a BQM above ``max_variables``.

    Examples:
        >>> import dimod
        >>> from qopt.solvers import ExactSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> float(ExactSolver().sample(bqm).first.energy)
        -1.0
    """

    name = "exact"

    def __init__(self, *, max_variables: int = 24):
        self.max_variables = check_int(
            max_variables, "max_variables", type(self).__name__, low=0, high=30
        )
        super().__init__(dimod.ExactSolver(), {})

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        check_bqm(bqm, type(self).__name__, allow_empty=True)
        if bqm.num_variables > self.max_variables:
            raise ProblemTooLargeError(
                f"The exact solver enumerates 2^n states and is limited to {self.max_variables} "
                f"variables; this BQM has {bqm.num_variables}. Use a heuristic solver "
                "(get_solver('sa') or 'tabu'), or raise max_variables if memory allows."
            )
        return super().sample(bqm, **parameters)
