"""Local classical backends: dwave-samplers' C++ heuristics and dimod's exhaustive search.

Each class is a thin :class:`dimod.Sampler` over its upstream sampler. It holds the defaults a
qopt user gets from ``get_solver(name)`` (checked at construction), and checks each BQM at call
time; any upstream parameter can still be passed to :meth:`sample`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import dimod
import numpy as np

from qopt._validation import check_bqm, check_float, check_int
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
        # The counts are checked per call too, with the constructor's values: dwave-samplers
        # would raise its own errors, or overflow a C int, for a negative, non-integer or huge
        # count.
        call = f"{type(self).__name__}.sample()"
        merged = {**self._defaults, **parameters}
        for name in ("num_reads", "num_sweeps", "timeout"):
            if merged.get(name) is not None:  # None: the upstream default (no clock for tabu)
                merged[name] = check_int(merged[name], name, call, low=1, high=2**31 - 1)
        if merged.get("seed") is not None:
            merged["seed"] = check_int(merged["seed"], "seed", call, low=0, high=2**32 - 1)
        if merged.get("beta_range") is not None:
            merged["beta_range"] = _check_beta_range(merged["beta_range"], call)
        return self._upstream.sample(bqm, **merged)


class SimulatedAnnealingSolver(_UpstreamSolver):
    """Simulated annealing (dwave-samplers), qopt's embedded default solver.

    Given ``initial_states`` (a warm start) and no ``beta_range``, :meth:`sample` anneals only
    the cold end of the default schedule, ``beta`` from a tenth of its final value up: hot
    sweeps would randomize the states and forget the warm start, so the anneal refines them
    instead. Without ``initial_states`` the schedule is dwave-samplers' own default.

    Args:
        num_reads: Independent annealing runs per solve (10; dwave-samplers' own default is 1).
        num_sweeps: Sweeps over all variables per run; more sweeps, better minima, more time.
        seed: Seed for reproducible samples; ``None`` draws one.
        beta_range: ``(hot, cold)`` inverse temperatures of the schedule, both positive;
            ``None`` (default) derives them from each BQM as dwave-samplers does.

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

    def __init__(
        self,
        *,
        num_reads: int = 10,
        num_sweeps: int = 1000,
        seed: int | None = None,
        beta_range: tuple[float, float] | None = None,
    ):
        from dwave.samplers import SimulatedAnnealingSampler

        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.num_sweeps = check_int(num_sweeps, "num_sweeps", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        self.beta_range = None if beta_range is None else _check_beta_range(beta_range, owner)
        super().__init__(
            SimulatedAnnealingSampler(),
            {
                "num_reads": self.num_reads,
                "num_sweeps": self.num_sweeps,
                "seed": self.seed,
                "beta_range": self.beta_range,
            },
        )

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        warm = parameters.get("initial_states") is not None
        custom = parameters.get("beta_schedule_type") == "custom"
        if (
            warm
            and not custom
            and parameters.get("beta_range", self.beta_range) is None
            and isinstance(bqm, dimod.BinaryQuadraticModel)
        ):
            _, cold = self.default_beta_range(bqm)
            parameters["beta_range"] = (cold / 10.0, cold)
        return super().sample(bqm, **parameters)

    @staticmethod
    def default_beta_range(bqm: dimod.BinaryQuadraticModel) -> tuple[float, float]:
        """dwave-samplers' default ``(hot, cold)`` inverse temperatures for ``bqm``, in numpy.

        The rule of ``dwave.samplers.sa.sampler.default_beta_range`` on the Ising form: hot
        enough that the largest effective field flips with probability 1/2, cold enough that
        the smallest flips with probability 1/100 summed over the variables that have it.
        dwave-samplers evaluates it with a Python loop over the couplings, which costs more
        than a short anneal of a large BQM; here it is a few array passes (equal up to
        floating-point rounding).

        Examples:
            >>> import dimod
            >>> from qopt.solvers import SimulatedAnnealingSolver
            >>> bqm = dimod.BinaryQuadraticModel({"a": -1.0}, {("a", "b"): 2.0}, 0, "BINARY")
            >>> [round(b, 3) for b in SimulatedAnnealingSolver.default_beta_range(bqm)]
            [0.347, 5.298]
        """
        linear, (rows, cols, data), _ = bqm.to_numpy_vectors()  # type: ignore[misc]
        linear = np.asarray(linear, dtype=float)
        data = np.asarray(data, dtype=float)
        if bqm.vartype is dimod.SPIN:
            h = linear.copy()
            coupling = np.abs(data)
        else:  # x = (s + 1) / 2
            h = linear / 2.0
            np.add.at(h, rows, data / 4.0)
            np.add.at(h, cols, data / 4.0)
            coupling = np.abs(data / 4.0)
        field = np.abs(h)
        np.add.at(field, rows, coupling)
        np.add.at(field, cols, coupling)
        smallest = np.where(np.abs(h) > 0, np.abs(h), np.inf)
        positive = np.where(coupling > 0, coupling, np.inf)
        np.minimum.at(smallest, rows, positive)
        np.minimum.at(smallest, cols, positive)
        finite = smallest[np.isfinite(smallest)]
        largest = float(field.max(initial=0.0))
        if finite.size == 0 or largest == 0:
            return (0.1, 1.0)
        gap = float(finite.min())
        hot = math.log(2) / (2 * largest)
        cold = math.log(int((finite == gap).sum()) / 0.01) / (2 * gap)
        return (hot, cold)


def _check_beta_range(value: Any, owner: str) -> tuple[float, float]:
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2:
        raise SolverConfigurationError(
            f"The 'beta_range' parameter of {owner} must be a pair (hot, cold) of positive "
            f"inverse temperatures, e.g. [0.1, 5]. Got {value!r} instead."
        )
    hot = check_float(value[0], "beta_range[0]", owner, low=0, low_inclusive=False)
    cold = check_float(value[1], "beta_range[1]", owner, low=0, low_inclusive=False)
    return (hot, cold)


class TabuSolver(_UpstreamSolver):
    """Multistart tabu search (dwave-samplers).

    An unseeded run searches for ``timeout`` milliseconds. A seeded run never looks at the
    clock: it stops after ``num_restarts`` restarts (each restart's length is bounded by a
    count of moves in dwave-samplers' C++ core), so the seed alone decides its result, on any
    machine and under any load. A clock would not: within 100 ms a loaded machine gets through
    fewer restarts than an idle one.

    Args:
        num_reads: Independent tabu runs per solve.
        timeout: Milliseconds each unseeded run may search (default 100). A seeded run ignores
            it; pass it to :meth:`sample` to bound a seeded run by the clock anyway.
        seed: Seed for reproducible samples; ``None`` draws one.
        num_restarts: Restarts per run after the first search. Default: for a seeded run
            :data:`SEEDED_RESTARTS`; for an unseeded one, as many as ``timeout`` allows.

    Reference: Palubeckis, "Multistart tabu search strategies for the unconstrained binary
    quadratic optimization problem", Annals of Operations Research 131 (2004).

    Examples:
        >>> import dimod
        >>> from qopt.solvers import TabuSolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> float(TabuSolver(seed=1).sample(bqm).first.energy)
        -1.0
    """

    name = "tabu"

    #: Restarts of a seeded run that sets no ``num_restarts``: on the 800-node G-set graphs
    #: about the work of the unseeded 100-200 ms (G1: 0.2 s of CPU), far less on small QUBOs.
    SEEDED_RESTARTS: ClassVar[int] = 5

    def __init__(
        self,
        *,
        num_reads: int = 1,
        timeout: int = 100,
        seed: int | None = None,
        num_restarts: int | None = None,
    ):
        from dwave.samplers import TabuSampler

        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.timeout = check_int(timeout, "timeout", owner, low=1, high=2**31 - 1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        self.num_restarts = (
            None
            if num_restarts is None
            else check_int(num_restarts, "num_restarts", owner, low=0, high=2**31 - 1)
        )
        super().__init__(
            TabuSampler(),
            {
                "num_reads": self.num_reads,
                "timeout": self.timeout,
                "seed": self.seed,
                "num_restarts": self.num_restarts,
            },
        )

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        if parameters.get("seed", self.seed) is not None and "timeout" not in parameters:
            parameters["timeout"] = None  # dwave-samplers: no clock at all
            if parameters.get("num_restarts", self.num_restarts) is None:
                parameters["num_restarts"] = self.SEEDED_RESTARTS
        if parameters.get("num_restarts") is not None:
            parameters["num_restarts"] = check_int(
                parameters["num_restarts"],
                "num_restarts",
                f"{type(self).__name__}.sample()",
                low=0,
                high=2**31 - 1,
            )
        return super().sample(bqm, **parameters)


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
