"""The proposal engine: history -> surrogate -> QUBO (constraints, trust region) -> solver -> point.

The loop follows FMQA (Kitai et al., Phys. Rev. Research 2, 013319 (2020)) and BOCS (Baptista &
Poloczek, ICML 2018): the space is encoded into bits (:mod:`qopt.encoding`), a quadratic
surrogate is fitted to the observations so far (:mod:`qopt.surrogates`), minimized as a QUBO
with the encoding's and the known constraints through :func:`qopt.pipeline.solve`, and the best
untried sample is decoded. With a trust region the QUBO also holds a Hamming ball around the
incumbent (Casmopolitan: Wan et al., ICML 2021; :mod:`qopt.search.trust_region`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dimod
import numpy as np

from qopt._validation import check_int
from qopt.constraints import ConstrainedQUBO
from qopt.encoding import DenseEnergy, SpaceEncoding
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError
from qopt.search.history import History, point_key
from qopt.search.neighbourhood import best_neighbour, random_untaken
from qopt.search.space import too_large_message
from qopt.search.targets import targets
from qopt.search.trust_region import HammingBall, trust_centre
from qopt.surrogates import (
    FactorizationMachine,
    SparseBayesianQuadraticRegression,
    fit_diagnostics,
    predicted_quantile,
    prediction_diagnostics,
    transform_targets,
)

__all__ = [
    "SOLVER_DEFAULTS",
    "SURROGATES",
    "TARGET_TRANSFORMS",
    "TRUST_METHODS",
    "TRUST_PENALTY",
    "TRUST_READS",
    "Proposal",
    "ProposalEngine",
    "RepairedReads",
    "largest_flip",
]

SURROGATES = ("fm", "bocs")
TARGET_TRANSFORMS = ("rank", "exp", "standardize", "robust")
#: How a trust-region proposal is found: the configured solver on the ball's QUBO, or enumeration.
TRUST_METHODS = ("solver", "enumerate")
#: The search's preferences for the backends that have these options (applied by
#: :func:`qopt.solvers.resolve_solver` where the user set none): surrogate QUBOs of up to a few
#: hundred bits reach the same minimum with 300 simulated-annealing sweeps as with SA's default
#: 1000 (benchmarks/sampler/run.py --overhead), at a third of the time.
SOLVER_DEFAULTS: dict[str, Any] = {"num_sweeps": 300}
#: Reads per trust-region solve when the solver takes ``num_reads`` and the user set none: the
#: best-predicted points of the ball are often tried already, so the next-best distinct reads are
#: needed (agreement with enumeration on 162 NAS-Bench-201 balls of tuning seeds: 32 reads 71 %,
#: 64 reads 85 %, 128 reads 93 %; docs/benchmarks/nas.md).
TRUST_READS = 64
#: Penalty weight of the ball's QUBO, in units of the surrogate's largest single-bit energy
#: change. The provable "auto" weights (1.1 x the objective's whole range, since the ball shares
#: bits with the one-hot groups) freeze annealing at random valid points (27 % agreement with
#: enumeration); a weight of the objective's own step keeps its minima resolvable, and every read
#: is repaired into the ball and re-ranked on the surrogate anyway.
TRUST_PENALTY = 0.5


@dataclass(frozen=True)
class Proposal:
    """A proposed point (value indices) and how it was found (``info``: phase, candidate
    source, prediction, fit diagnostics, QUBO size, solve time)."""

    indices: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)


class RepairedReads:
    """A repair (bits -> bits) that remembers its answers.

    Given to the pipeline as the formulation's repair, it lets the caller rank every read
    afterwards by what the pipeline made of it (:meth:`of`) without repairing it again.

    Examples:
        >>> import numpy as np
        >>> from qopt.encoding import IntParameter, SpaceEncoding
        >>> space = SpaceEncoding({"x": IntParameter(0, 2)})
        >>> repaired = RepairedReads(space, space.repair)
        >>> repaired.of(np.array([0, 1])).tolist(), repaired.of(np.array([1, 0])).tolist()
        ([0, 0], [1, 0])
    """

    def __init__(
        self,
        space: SpaceEncoding,
        fix: Callable[[np.ndarray], np.ndarray],
        within: Callable[[Mapping[str, int]], bool] | None = None,
    ) -> None:
        self.space = space
        self.fix = fix
        self.within = within
        self._done: dict[bytes, np.ndarray] = {}

    def __call__(self, bits: np.ndarray) -> np.ndarray:
        key = np.asarray(bits, dtype=np.int8).tobytes()
        if key not in self._done:
            self._done[key] = np.asarray(self.fix(np.asarray(bits, dtype=np.int8)), np.int8)
        return self._done[key]

    def of(self, bits: np.ndarray) -> np.ndarray:
        """``bits`` as the pipeline left them: repaired if it repaired them, else unchanged
        (a feasible read); repaired now if neither (the pipeline may skip reads)."""
        key = np.asarray(bits, dtype=np.int8).tobytes()
        if key in self._done:
            return self._done[key]
        feasible = bool(self.space.feasible_rows(bits)[0]) and (
            self.within is None or self.within(self.space.decode_indices(bits))
        )
        return np.asarray(bits, dtype=np.int8) if feasible else self(bits)


class ProposalEngine:
    """Proposes the next point of an encoded space from what has been observed.

    The first proposals follow a space-filling design that turns every bit on at least once;
    after that each proposal fits a quadratic surrogate over the bits to the observations (a
    factorization machine, ``"fm"``, or a sparse Bayesian quadratic model sampled with Thompson
    sampling, ``"bocs"``), turns it into a QUBO with the encoding's and the known linear
    constraints, solves it through :func:`qopt.pipeline.solve`, and returns the best sample not
    yet observed. :class:`qopt.search.QuboSearch` drives it by ask/tell;
    :class:`qopt.integrations.optuna.QuboSampler` from Optuna trials. The options are those of
    :class:`~qopt.search.QuboSearch`.

    Attributes:
        rng: The generator behind every random choice (design, ParEGO weights, surrogate and
            solver seeds); replace it to reseed.

    Examples:
        >>> import numpy as np
        >>> from qopt.encoding import IntParameter, SpaceEncoding
        >>> from qopt.search import History, ProposalEngine
        >>> space = SpaceEncoding({"x": IntParameter(0, 3), "y": IntParameter(0, 3)})
        >>> engine = ProposalEngine(seed=0, n_startup_trials=2)
        >>> proposal = engine.propose(space, History(), signs=[1.0])
        >>> proposal.info["phase"], sorted(proposal.indices)
        ('start', ['x', 'y'])
    """

    #: Diagnostics hook (benchmarks/nas/run.py --agreement): when true, every trust-region
    #: proposal also records the energy of the ball's exact minimum found by enumeration
    #: (``ball_exact_energy`` beside ``ball_energy``), at the cost of an enumeration.
    audit_trust_region: bool = False

    def __init__(
        self,
        *,
        solver: str | dimod.Sampler = "sa",
        solver_options: Mapping[str, Any] | None = None,
        surrogate: str = "fm",
        surrogate_options: Mapping[str, Any] | None = None,
        target_transform: str = "rank",
        n_startup_trials: int = 10,
        seed: int | None = None,
        local_search: bool = False,
        trust_region: int | None = None,
        trust_region_method: str = "solver",
        trust_region_restart: int | None = None,
        owner: str = "ProposalEngine",
    ) -> None:
        from qopt.solvers import check_solver_options

        self.owner = owner
        check_solver_options(solver, solver_options, owner)
        if surrogate not in SURROGATES:
            raise SolverConfigurationError(
                f"The 'surrogate' parameter of {owner} must be a str among {list(SURROGATES)}. "
                f"Got {surrogate!r} instead."
            )
        if target_transform not in TARGET_TRANSFORMS:
            raise SolverConfigurationError(
                f"The 'target_transform' parameter of {owner} must be a str among "
                f"{list(TARGET_TRANSFORMS)}. Got {target_transform!r} instead."
            )
        if trust_region_method not in TRUST_METHODS:
            raise SolverConfigurationError(
                f"The 'trust_region_method' parameter of {owner} must be a str among "
                f"{list(TRUST_METHODS)}. Got {trust_region_method!r} instead."
            )
        self.solver_spec = solver
        self.solver_options = dict(solver_options or {})
        self._solver: dimod.Sampler | None = None
        self.surrogate = surrogate
        self.surrogate_options = dict(surrogate_options or {})
        self.target_transform = target_transform
        self.n_startup_trials = check_int(n_startup_trials, "n_startup_trials", owner, low=0)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0)
        self.rng = np.random.default_rng(seed)
        self.local_search = bool(local_search)
        self.trust_region = (
            None if trust_region is None else check_int(trust_region, "trust_region", owner, low=1)
        )
        self.trust_region_method = trust_region_method
        self.trust_region_restart = (
            None
            if trust_region_restart is None
            else check_int(trust_region_restart, "trust_region_restart", owner, low=1)
        )
        # Per space (by the caller's key): the start design and the surrogate kept across fits.
        self._designs: dict[Hashable, list[dict[str, int]]] = {}
        self._models: dict[Hashable, Any] = {}
        # Build one surrogate now so that bad surrogate_options fail at construction.
        self._new_surrogate(np.zeros(1, dtype=np.int64))

    # --------------------------------------------------------------- public
    def solver(self) -> dimod.Sampler:
        """The configured solver, built on first use (:func:`qopt.solvers.resolve_solver`)."""
        if self._solver is None:
            from qopt.solvers import resolve_solver

            self._solver = resolve_solver(
                self.solver_spec, self.solver_options, defaults=SOLVER_DEFAULTS, owner=self.owner
            )
        return self._solver

    def propose(
        self,
        space: SpaceEncoding,
        history: History,
        signs: Sequence[float],
        *,
        key: Hashable = None,
    ) -> Proposal:
        """The next point of ``space`` given ``history``.

        Args:
            space: The encoded space.
            history: Its observations and pending points.
            signs: Per objective, ``1.0`` to minimize it, ``-1.0`` to maximize it.
            key: Identifies ``space`` among the spaces this engine serves (its start design and
                surrogate are kept per key).
        """
        taken = history.taken()
        n_start = max(self.n_startup_trials, space.coverage_size())
        if key not in self._designs:
            self._designs[key] = space.space_filling(n_start, self.rng)
        design = [p for p in self._designs[key] if point_key(p) not in taken]
        finite = [v for v in history.values if np.isfinite(v).all()]
        if design and len(history.points) + len(history.pending) <= n_start:
            return Proposal(design[0], {"phase": "start", "n_bits": space.n_bits})
        if len(finite) < 2:
            point = random_untaken(space, taken, self.rng)
            return Proposal(point, {"phase": "random", "n_bits": space.n_bits})
        return self._model_proposal(key, space, history, signs, taken)

    # --------------------------------------------------------------- model phase
    def _new_surrogate(self, groups: np.ndarray) -> Any:
        seed = int(self.rng.integers(2**31))
        options = {"seed": seed, **self.surrogate_options, "groups": groups}
        cls = FactorizationMachine if self.surrogate == "fm" else SparseBayesianQuadraticRegression
        try:
            return cls(**options)
        except TypeError as error:
            raise SolverConfigurationError(
                f"The 'surrogate_options' parameter of {self.owner} has an option that "
                f"{cls.__name__} does not take ({error})."
            ) from error

    def _model_proposal(
        self,
        key: Hashable,
        space: SpaceEncoding,
        history: History,
        signs: Sequence[float],
        taken: set[tuple[int, ...]],
    ) -> Proposal:
        y = targets(history.values, history.violations, signs, self.rng)
        X = np.array(history.rows, dtype=float).reshape(len(history.rows), space.n_bits)
        observed_y = transform_targets(y, self.target_transform)
        if history.pending:
            # Constant liar: pending points take the worst observed value.
            X = np.vstack([X, np.array(history.pending_rows, dtype=float)])
            observed_y = np.concatenate(
                [observed_y, np.full(len(history.pending), observed_y.max())]
            )
        model = self._models.get(key)
        if model is None or self.surrogate == "fm":
            model = self._new_surrogate(space.groups)
            self._models[key] = model
        start = time.perf_counter()
        model.fit(X, observed_y)
        bqm = model.to_bqm()
        fit_s = time.perf_counter() - start
        in_sample = fit_diagnostics(model, X[: len(y)], observed_y[: len(y)])
        out_of_sample = prediction_diagnostics(history.forecasts, history.outcomes)
        diagnostics = {
            **{f"fit_{k}": v for k, v in in_sample.items()},
            **out_of_sample,
        }
        energy = DenseEnergy(bqm, space.n_bits)
        finite = np.isfinite(y)
        incumbent = (
            history.points[int(np.argmin(np.where(finite, y, np.inf)))] if finite.any() else None
        )
        local = None
        solution = None
        trust: dict[str, Any] = {}
        restart = False
        if (
            self.trust_region is not None
            and self.trust_region_restart is not None
            and incumbent is not None
        ):
            incumbent, restart, stalled = trust_centre(y, history, self.trust_region_restart)
            trust["trust_stalled"] = stalled
        if restart and incumbent is not None and self.trust_region is not None:
            ball = HammingBall(space, incumbent, self.trust_region)
            local, solution, restart_attrs = self._solve_outside(space, bqm, energy, ball, taken)
            trust.update(restart_attrs)
            source = "trust-region-restart"
            # Only a proposal outside the stalled ball starts a new region; else climb on.
            restart = local is not None
            solution = solution if restart else None
        if not restart and self.trust_region is not None and incumbent is not None:
            # Casmopolitan's trust region: the surrogate's minimum over the untried points
            # near the incumbent.
            ball = HammingBall(space, incumbent, self.trust_region)
            if self.trust_region_method == "solver":
                local, source, solution, ball_attrs = self.solve_ball(
                    space, bqm, energy, ball, taken
                )
                trust.update(ball_attrs)
            else:
                local, source = ball.best_untried(energy, taken), "trust-region-enumerated"
            if self.audit_trust_region and local is not None:
                exact = ball.best_untried(energy, taken)
                trust["ball_energy"] = energy.of(space.encode_indices(local))
                trust["ball_exact_energy"] = (
                    None if exact is None else energy.of(space.encode_indices(exact))
                )
        if local is not None:
            point = local
        else:
            solution, reads, repaired = self._solve(
                space, space.constrained_qubo(bqm), lambda row: space.repair(row, energy=energy)
            )
            point, source = self._pick(space, energy, reads, repaired, taken, incumbent)
        bits = space.encode_indices(point)
        predicted = float(np.asarray(model.predict(bits[None, :])).reshape(-1)[0])
        seen = observed_y[: len(y)]
        if restart:
            trust["trust_restart"] = True
        info = {
            "phase": "model",
            "surrogate": self.surrogate,
            "candidate": source,
            "n_bits": space.n_bits,
            "qubo_variables": None
            if solution is None
            else int(solution.sampleset.variables.__len__()),
            "predicted": predicted,
            "predicted_quantile": predicted_quantile(predicted, seen),
            "fit_s": fit_s,
            "solver_wall_s": None if solution is None else _wall(solution),
            **trust,
            **{
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in diagnostics.items()
            },
        }
        return Proposal(point, info)

    # --------------------------------------------------------------- trust region
    def _solve_outside(
        self,
        space: SpaceEncoding,
        bqm: dimod.BinaryQuadraticModel,
        energy: DenseEnergy,
        ball: HammingBall,
        taken: set[tuple[int, ...]],
    ) -> tuple[dict[str, int] | None, Any, dict[str, Any]]:
        """A restart point: the surrogate's best untried feasible read outside ``ball``.

        The ball's distance inequality with the bound moved to ``>= radius + 1`` goes into the
        QUBO beside the known constraints; reads are repaired (valid patterns, constraints),
        those that fell back inside the ball or were tried are dropped, and the lowest
        remaining one wins. ``None`` when no read qualifies.
        """
        anchor = ball.push_out(ball.centre, energy)
        if anchor is None:  # no feasible point outside the ball reachable greedily
            return None, None, {}
        model = space.constrained_qubo(bqm)
        terms, lb, _ = ball.inequality()
        model.add_inequality(terms, lb=lb + ball.radius, label="outside the trust region")

        def outside(row: np.ndarray) -> np.ndarray:
            indices = space.decode_indices(space.repair(row, energy=energy))
            if ball.distance(indices) > ball.radius:
                return space.encode_indices(indices)
            pushed = ball.push_out(indices, energy)
            return space.encode_indices(anchor if pushed is None else pushed)

        solution, reads, repaired = self._solve(
            space,
            model,
            outside,
            within=lambda indices: ball.distance(indices) > ball.radius,
            penalty=TRUST_PENALTY * largest_flip(energy) or 1.0,
            num_reads=TRUST_READS,
        )
        candidates: dict[tuple[int, ...], float] = {}
        for row in reads:
            fixed = repaired.of(row)
            key = point_key(space.decode_indices(fixed))
            if key not in taken:
                candidates.setdefault(key, energy.of(fixed))
        attrs = {"trust_restart_reads": len(reads), "trust_restart_candidates": len(candidates)}
        if not candidates:
            return None, solution, attrs
        best = min(candidates, key=lambda k: (candidates[k], k))
        return dict(zip(list(space.parameters), best, strict=True)), solution, attrs

    def _solve(
        self,
        space: SpaceEncoding,
        model: ConstrainedQUBO,
        fix: Callable[[np.ndarray], np.ndarray],
        *,
        within: Callable[[Mapping[str, int]], bool] | None = None,
        penalty: float | str = "auto",
        num_reads: int | None = None,
    ) -> tuple[Any, np.ndarray, RepairedReads]:
        """Solve ``model`` through :func:`qopt.pipeline.solve`: the Solution, its distinct
        reads (bits) and the repair the pipeline applied to them.

        Feasible means a valid pattern within the known constraints (and ``within``); the
        pipeline repairs every other read with ``fix``, and the returned
        :class:`RepairedReads` reads those repairs back. A named solver that takes
        ``num_reads``, none set by the user, makes ``num_reads`` reads when given.
        """
        from qopt.pipeline import solve

        solver = self.solver()
        params: dict[str, Any] = {}
        if "seed" in solver.parameters:
            params["seed"] = int(self.rng.integers(2**31))
        if (
            num_reads is not None
            and isinstance(self.solver_spec, str)
            and "num_reads" not in self.solver_options
            and "num_reads" in solver.parameters
        ):
            params["num_reads"] = num_reads
        repaired = RepairedReads(space, fix, within)
        formulation = space.formulation(
            model.objective, model=model, repair=repaired, within=within, penalty=penalty
        )
        try:
            solution = solve(formulation, solver=solver, **params)
        except ProblemTooLargeError as error:
            raise ProblemTooLargeError(too_large_message(space, str(error))) from error
        sampleset = solution.sampleset
        columns = [sampleset.variables.index(i) for i in range(space.n_bits)]
        reads = np.unique(np.asarray(sampleset.record.sample, dtype=np.int8)[:, columns], axis=0)
        return solution, reads, repaired

    def solve_ball(
        self,
        space: SpaceEncoding,
        bqm: dimod.BinaryQuadraticModel,
        energy: DenseEnergy,
        ball: HammingBall,
        taken: set[tuple[int, ...]],
    ) -> tuple[dict[str, int] | None, str, Any, dict[str, Any]]:
        """The trust-region proposal from the solver: ``(point, source, solution, info)``.

        The surrogate's QUBO with the encoding's constraints, the known constraints and the
        ball ``1 <= distance <= r`` as one more linear inequality goes through
        :func:`qopt.pipeline.solve`; every read is repaired into the ball
        (:meth:`HammingBall.repair`), and the untried read of lowest surrogate energy wins. When
        every read is a tried point, the ball is enumerated instead (``trust_fallback``);
        ``point`` is None when the ball holds no untried feasible point (the caller then solves
        the whole space).
        """
        anchor = ball.anchor(energy)
        if anchor is None:  # no feasible point in the ball but the incumbent
            return None, "", None, {}
        model = space.constrained_qubo(bqm)
        terms, lb, ub = ball.inequality()
        model.add_inequality(terms, lb=lb, ub=ub, label="trust region")
        solution, reads, repaired = self._solve(
            space,
            model,
            lambda row: ball.repair(row, energy, anchor),
            within=lambda indices: 1 <= ball.distance(indices) <= ball.radius,
            penalty=TRUST_PENALTY * largest_flip(energy) or 1.0,
            num_reads=TRUST_READS,
        )
        candidates: dict[tuple[int, ...], tuple[float, bool]] = {}
        for row in reads:
            fixed = repaired.of(row)
            key = point_key(space.decode_indices(fixed))
            as_read = bool(np.array_equal(fixed, row))
            value = energy.of(fixed)
            if key not in candidates or (as_read and not candidates[key][1]):
                candidates[key] = (value, as_read)
        untried = [k for k in candidates if k not in taken]
        attrs: dict[str, Any] = {
            "trust_reads": len(reads),
            "trust_untried_reads": len(untried),
            "trust_fallback": False,
        }
        names = list(space.parameters)
        if untried:
            best = min(untried, key=lambda k: (candidates[k][0], k))
            source = "trust-region" if candidates[best][1] else "trust-region-repaired"
            return dict(zip(names, best, strict=True)), source, solution, attrs
        # Every read is a tried point (the surrogate's lowest points near the incumbent are
        # usually the ones already evaluated): enumerate the ball instead.
        attrs["trust_fallback"] = True
        return ball.best_untried(energy, taken), "trust-region-enumerated", solution, attrs

    # --------------------------------------------------------------- whole space
    def _pick(
        self,
        space: SpaceEncoding,
        energy: DenseEnergy,
        reads: np.ndarray,
        repaired: RepairedReads,
        taken: set[tuple[int, ...]],
        incumbent: dict[str, int] | None = None,
    ) -> tuple[dict[str, int], str]:
        """The lowest-surrogate repaired read not yet taken, else a neighbour, else random."""
        candidates: dict[tuple[int, ...], float] = {}
        for row in reads:
            fixed = repaired.of(row)
            point = point_key(space.decode_indices(fixed))
            candidates.setdefault(point, energy.of(fixed))
        ranked = sorted(candidates, key=lambda p: (candidates[p], p))
        names = list(space.parameters)
        for rank, point in enumerate(ranked):
            if point not in taken:
                return dict(
                    zip(names, point, strict=True)
                ), "solver-best" if rank == 0 else "solver-next"
            if rank == 0 and self.local_search and incumbent is not None:
                # The model's optimum is already evaluated: rather than jump to another of its
                # minima, perturb the incumbent where the model expects most (a Hamming trust
                # region, as in Casmopolitan: Wan et al., ICML 2021).
                local = best_neighbour(space, energy, incumbent, taken)
                if local is not None:
                    return local, "incumbent-neighbour"
        if ranked:
            local = best_neighbour(space, energy, dict(zip(names, ranked[0], strict=True)), taken)
            if local is not None:
                return local, "neighbour"
        if len(taken) >= space.size and ranked:
            return dict(zip(names, ranked[0], strict=True)), "duplicate (space exhausted)"
        return random_untaken(space, taken, self.rng), "random"


def largest_flip(energy: DenseEnergy) -> float:
    """The largest change of ``energy`` that flipping one bit can make, in any state.

    Examples:
        >>> import dimod
        >>> largest_flip(DenseEnergy(dimod.BQM({0: 1.0, 1: -2.0}, {(0, 1): 3.0}, 0, "BINARY"), 2))
        4.0
    """
    up = np.maximum(energy.J, 0.0).sum(axis=1)
    down = np.minimum(energy.J, 0.0).sum(axis=1)
    flips = np.maximum(np.abs(energy.h + up), np.abs(energy.h + down))
    return float(flips.max(initial=0.0))


def _wall(solution: Any) -> float | None:
    record = getattr(solution, "record", None)
    wall = getattr(record, "wall_s", None)
    return None if wall is None else float(wall)
