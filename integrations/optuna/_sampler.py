"""QuboSampler: Optuna trials -> quadratic surrogate -> QUBO -> qopt solver -> parameters.

The loop follows FMQA (Kitai et al., Phys. Rev. Research 2, 013319 (2020)) and BOCS (Baptista &
Poloczek, ICML 2018): encode the search space into bits (:mod:`qopt.encoding`), fit a quadratic
surrogate to the trials so far (:mod:`qopt.surrogates`), minimize it as a QUBO with any qopt
solver through :func:`qopt.pipeline.solve`, and decode the best new point.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import dimod
import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.samplers import BaseSampler, RandomSampler
from optuna.search_space import IntersectionSearchSpace
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt._validation import check_int
from qopt.constraints import ConstrainedQUBO
from qopt.encoding import (
    CategoricalParameter,
    DenseEnergy,
    FloatParameter,
    IntParameter,
    Parameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.exceptions import InvalidProblemError, ProblemTooLargeError, SolverConfigurationError
from qopt.surrogates import (
    FactorizationMachine,
    SparseBayesianQuadraticRegression,
    fit_diagnostics,
    predicted_quantile,
    prediction_diagnostics,
    transform_targets,
)

__all__ = ["QuboSampler"]

_logger = logging.getLogger(__name__)

#: Optuna's wording for a parameter left to the independent sampler (optuna.samplers._base).
_INDEPENDENT_SAMPLING_WARNING = (
    "The parameter `{param_name}` in Trial#{trial_number} is sampled independently "
    "using `{independent_sampler_name}` instead of `{sampler_name}`, potentially "
    "degrading the optimization performance. This fallback happened because "
    "{fallback_reason}. You can suppress this warning by setting "
    "`warn_independent_sampling` to `False` in the constructor of `{sampler_name}` if "
    "this independent sampling is intended behavior."
)
#: Proposals are shared with other workers through this system attribute (chunked for RDB).
_PROPOSAL_KEY = "qopt:proposal"
_ATTR_MAX_LENGTH = 2045
#: Optuna's system attribute for black-box constraint values (old list format).
_CONSTRAINTS_KEY = "constraints"
_SURROGATES = ("fm", "bocs")
_TRANSFORMS = ("rank", "exp", "standardize", "robust")
#: Simulated-annealing sweeps per surrogate solve when the solver is "sa" and none are given.
_SA_SWEEPS = 300
#: ParEGO's augmentation weight (Knowles 2006).
_PAREGO_RHO = 0.05
#: Points of each ring of the trust region that seed the next ring when a ring holds more than
#: _BALL_EXACT points (below that every point seeds it and the enumeration is exact).
_TRUST_BEAM = 64
_BALL_EXACT = 4096
#: How a trust-region proposal is found: the configured solver on the ball's QUBO, or enumeration.
_TRUST_METHODS = ("solver", "enumerate")
#: Annealing reads per trust-region solve when the solver is "sa" and no num_reads is given:
#: the best-predicted points of the ball are often tried already, so the next-best distinct
#: reads are needed (agreement with enumeration on 162 NAS-Bench-201 balls of tuning seeds:
#: 32 reads 71 %, 64 reads 85 %, 128 reads 93 %; docs/nas.md).
_TRUST_READS = 64
#: Penalty weight of the ball's QUBO, in units of the surrogate's largest single-bit energy
#: change. The provable "auto" weights (1.1 x the objective's whole range, since the ball
#: shares bits with the one-hot groups) freeze annealing at random valid points (27 % agreement
#: with enumeration); a weight of the objective's own step keeps its minima resolvable, and
#: every read is repaired into the ball and re-ranked on the surrogate anyway.
_TRUST_PENALTY = 0.5


class QuboSampler(BaseSampler):
    """Optuna sampler that proposes each trial by minimizing a quadratic surrogate as a QUBO.

    Each parameter is encoded into bits (:class:`qopt.encoding.SpaceEncoding`: one-hot for
    categoricals, domain-wall for ordered values, a grid of ``n_bins`` points for continuous
    floats). The first trials follow a space-filling design that turns every bit on at least
    once; after that each trial fits a quadratic surrogate over the bits to the trials so far, a
    factorization machine (``"fm"``, FMQA: Kitai et al., Phys. Rev. Research 2, 013319 (2020))
    or a sparse Bayesian quadratic model sampled with Thompson sampling (``"bocs"``, Baptista &
    Poloczek, ICML 2018), turns it into a QUBO with the encoding's constraints and the known
    linear ``constraints`` on parameters, solves it with a qopt solver through
    :func:`qopt.pipeline.solve`, and decodes the best sample not yet evaluated.

    Behaviour worth knowing:

    * No duplicate proposals while unevaluated grid points remain: the next-best distinct
      sample is used, then a neighbour of the best, then a random unevaluated point.
    * Failed trials (including NaN objectives) and pruned trials count as worse than every
      completed one; black-box constraints (``constraints_func`` or
      :meth:`optuna.trial.Trial.set_constraint`) make infeasible trials rank after feasible
      ones, ordered by violation.
    * Running trials are pending points: their proposals are stored on the trial (system
      attribute ``"qopt:proposal"``), never proposed again, and enter the fit at the worst
      observed value (constant liar), so threads (``n_jobs > 1``) and processes sharing an RDB
      storage do not collide.
    * The relative search space is the intersection of the completed trials' spaces; other
      parameters (conditional, dynamic) go to ``independent_sampler`` with Optuna's warning.
    * Multi-objective studies are scalarized with random weights each trial (ParEGO: Knowles,
      IEEE Trans. Evol. Comput. 10(1), 2006).
    * With a fixed ``seed`` and ``n_jobs=1`` a study is reproducible.
    * Each proposed trial carries diagnostics as system attributes ``"qopt:*"``: the phase,
      the surrogate's prediction and where it places the point among the trials so far
      (``predicted_quantile``, made before the trial runs; ``observed_quantile`` is added once
      it is told), how well the surrogate's earlier forecasts ranked their outcomes
      (``oos_spearman``, ``oos_top_spearman``: out of sample,
      :func:`qopt.surrogates.prediction_diagnostics`), the in-sample fit (``fit_*``), the fit
      and solve times and the QUBO size.

    Args:
        solver: A qopt solver name (``qopt solvers`` lists them) or a :class:`dimod.Sampler`.
        surrogate: ``"fm"`` or ``"bocs"``.
        n_startup_trials: Trials of the space-filling start (raised to what it takes to turn
            every bit on once: the largest one-hot parameter's number of choices).
        seed: Seed for reproducible studies.
        independent_sampler: Sampler for parameters outside the relative search space
            (default: ``RandomSampler`` with the same seed).
        constraints: Known linear constraints on numeric parameters
            (:class:`qopt.encoding.ParameterConstraint`); they go into the QUBO and every
            proposal satisfies them.
        constraints_func: Black-box constraints: a function of a finished
            :class:`~optuna.trial.FrozenTrial` returning values, feasible when all are ``<= 0``.
        encoding: ``"auto"``, ``"one-hot"`` or ``"domain-wall"`` for every parameter.
        encodings: Per-parameter overrides of ``encoding``.
        n_bins: Grid points for each continuous float parameter.
        max_values: Integer and stepped-float ranges with more values are thinned to this many.
        max_bits: Refuse spaces that encode to more bits (``None``: no limit here; the solver's
            own limit still applies).
        target_transform: ``"robust"``, ``"rank"``, ``"exp"`` or ``"standardize"``
            (:func:`qopt.surrogates.transform_targets`).
        surrogate_options: Keyword options of the surrogate class
            (:class:`qopt.surrogates.FactorizationMachine` or
            :class:`qopt.surrogates.SparseBayesianQuadraticRegression`).
        solver_options: Options for :func:`qopt.solvers.get_solver` when ``solver`` is a name
            (with ``solver="sa"``, ``num_sweeps`` defaults to 300 rather than SA's 1000).
        warn_independent_sampling: Log Optuna's warning when a parameter falls back to the
            independent sampler after the start.
        local_search: When the surrogate's optimum has already been evaluated, propose the
            best-predicted untried point within two steps of the best trial (a Hamming trust
            region around the incumbent, as in Casmopolitan: Wan et al., ICML 2021) before
            falling back to the surrogate's other minima.
        trust_region: Radius of a Hamming trust region around the best trial, or ``None``
            (default: search the whole space). When set, each model proposal minimizes the
            surrogate over the untried feasible points at distance ``1 .. trust_region``
            from the incumbent, as in Casmopolitan (Wan et al., "Think Global and Act Local:
            Bayesian Optimisation over High-Dimensional Categorical and Mixed Search
            Spaces", ICML 2021); the incumbent moves whenever a proposal improves on it. The
            distance counts changed one-hot parameters plus, for domain-wall parameters,
            index steps (their bits' Hamming distance): on the encoding's bits it is
            *linear*, so the ball is a linear inequality of the QUBO (beside the known
            ``constraints``) and the solver minimizes the surrogate inside it. Reads are
            repaired into the ball, tried points dropped, and the best-predicted remaining
            one proposed; only when no read gives an untried point is the ball enumerated
            (trial attribute ``"qopt:trust_fallback"``), and only when the ball holds no
            untried point is the QUBO solved over the whole space. Suits rugged spaces where
            a global quadratic surrogate ranks the best points poorly (architecture search:
            docs/nas.md).
        trust_region_method: ``"solver"`` (default: the configured solver minimizes the
            ball's QUBO, as above) or ``"enumerate"`` (the exact minimum over the ball by
            enumeration, breadth-first; rings with more than 4096 points keep their 64
            best-predicted points as seeds of the next). Enumeration is exact and cheap on
            small balls; the solver path is the one that scales and that any qopt backend
            (annealer, QAOA, QPU) can serve.
        trust_region_restart: With ``trust_region``: restart the trust region after this many
            trials in a row that do not improve on the best trial since the last restart (its
            centre), or ``None`` (default: never). The restart is TuRBO's (Eriksson et al.,
            "Scalable Global Optimization via Local Bayesian Optimization", NeurIPS 2019:
            a trust region that keeps failing is abandoned for a fresh one) with
            Casmopolitan's global step (Wan et al., ICML 2021: the model fitted to *all* trials
            picks where the new region starts): the next proposal minimizes the surrogate over
            the untried feasible points *outside* the stalled ball (distance ``>= r + 1`` from
            its centre, the same linear inequality in the QUBO), and the trust region is then
            centred on the best trial from that proposal on (trial attributes
            ``"qopt:trust_restart"`` on the restart proposal, ``"qopt:trust_stalled"``: trials
            since the region's best). The best trial overall is kept by the study as always.
            Off by default: on NAS-Bench-201 it did not help (docs/nas.md).

    Raises:
        SolverConfigurationError: An option is unknown or out of range.
        UnknownSolverError: ``solver`` is not a registered name.

    Examples:
        >>> import optuna
        >>> from qopt.integrations.optuna import QuboSampler
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> def objective(trial):
        ...     x = [trial.suggest_int(f"x{i}", 0, 3) for i in range(3)]
        ...     return sum((v - 2) ** 2 for v in x)
        >>> sampler = QuboSampler(seed=0, n_startup_trials=5, surrogate_options={"n_epochs": 100})
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(objective, n_trials=20)
        >>> study.best_value
        0.0
    """

    #: Diagnostics hook (benchmarks/nas/run.py --agreement): when true, every trust-region
    #: proposal also records the energy of the ball's exact minimum found by enumeration
    #: (``qopt:ball_exact_energy`` beside ``qopt:ball_energy``), at the cost of an enumeration.
    _audit_trust_region: bool = False

    def __init__(
        self,
        *,
        solver: str | dimod.Sampler = "sa",
        surrogate: str = "fm",
        n_startup_trials: int = 10,
        seed: int | None = None,
        independent_sampler: BaseSampler | None = None,
        constraints: Sequence[ParameterConstraint] | None = None,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        encoding: str = "auto",
        encodings: Mapping[str, str] | None = None,
        n_bins: int = 16,
        max_values: int = 32,
        max_bits: int | None = None,
        target_transform: str = "rank",
        surrogate_options: Mapping[str, Any] | None = None,
        solver_options: Mapping[str, Any] | None = None,
        warn_independent_sampling: bool = True,
        local_search: bool = False,
        trust_region: int | None = None,
        trust_region_method: str = "solver",
        trust_region_restart: int | None = None,
    ) -> None:
        owner = type(self).__name__
        if isinstance(solver, str):
            from qopt.solvers import solver_spec

            solver_spec(solver)  # an unknown name fails now, listing the known ones
        elif not isinstance(solver, dimod.Sampler):
            raise SolverConfigurationError(
                f"The 'solver' parameter of {owner} must be a solver name (str) or a "
                f"dimod.Sampler. Got {solver!r} instead."
            )
        if surrogate not in _SURROGATES:
            raise SolverConfigurationError(
                f"The 'surrogate' parameter of {owner} must be a str among {list(_SURROGATES)}. "
                f"Got {surrogate!r} instead."
            )
        if target_transform not in _TRANSFORMS:
            raise SolverConfigurationError(
                f"The 'target_transform' parameter of {owner} must be a str among "
                f"{list(_TRANSFORMS)}. Got {target_transform!r} instead."
            )
        if encoding not in ("auto", "one-hot", "domain-wall"):
            raise SolverConfigurationError(
                f"The 'encoding' parameter of {owner} must be a str among "
                f"['auto', 'one-hot', 'domain-wall']. Got {encoding!r} instead."
            )
        for name, scheme in (encodings or {}).items():
            if scheme not in ("auto", "one-hot", "domain-wall"):
                raise SolverConfigurationError(
                    f"The 'encodings' parameter of {owner} gives parameter '{name}' the "
                    f"encoding {scheme!r}; use 'auto', 'one-hot' or 'domain-wall'."
                )
        constraints = list(constraints or [])
        for c in constraints:
            if not isinstance(c, ParameterConstraint):
                raise SolverConfigurationError(
                    f"The 'constraints' parameter of {owner} must be a list of "
                    f"qopt.encoding.ParameterConstraint. Got {type(c).__name__} instead."
                )
        if trust_region_method not in _TRUST_METHODS:
            raise SolverConfigurationError(
                f"The 'trust_region_method' parameter of {owner} must be a str among "
                f"{list(_TRUST_METHODS)}. Got {trust_region_method!r} instead."
            )
        if constraints_func is not None and not callable(constraints_func):
            raise SolverConfigurationError(
                f"The 'constraints_func' parameter of {owner} must be callable or None. "
                f"Got {constraints_func!r} instead."
            )
        self._solver_spec = solver
        self._solver: dimod.Sampler | None = None if isinstance(solver, str) else solver
        self._surrogate = surrogate
        self._n_startup_trials = check_int(n_startup_trials, "n_startup_trials", owner, low=0)
        self._seed = None if seed is None else check_int(seed, "seed", owner, low=0)
        self._rng = np.random.default_rng(seed)
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._constraints = constraints
        self._constraints_func = constraints_func
        self._encoding = encoding
        self._encodings = dict(encodings or {})
        self._n_bins = check_int(n_bins, "n_bins", owner, low=2)
        self._max_values = check_int(max_values, "max_values", owner, low=2)
        self._max_bits = None if max_bits is None else check_int(max_bits, "max_bits", owner, low=1)
        self._target_transform = target_transform
        self._surrogate_options = dict(surrogate_options or {})
        self._solver_options = dict(solver_options or {})
        if solver == "sa":
            # Surrogate QUBOs of up to a few hundred bits reach the same minimum with 300 sweeps
            # as with SA's default 1000 (benchmarks/sampler/run.py --overhead), at a third of
            # the time; an explicit num_sweeps wins.
            self._solver_options.setdefault("num_sweeps", _SA_SWEEPS)
        self._warn_independent_sampling = bool(warn_independent_sampling)
        self._local_search = bool(local_search)
        self._trust_region = (
            None if trust_region is None else check_int(trust_region, "trust_region", owner, low=1)
        )
        self._trust_region_method = trust_region_method
        self._trust_region_restart = (
            None
            if trust_region_restart is None
            else check_int(trust_region_restart, "trust_region_restart", owner, low=1)
        )
        self._search_space = IntersectionSearchSpace()
        self._spaces: dict[tuple[Any, ...], SpaceEncoding] = {}
        self._designs: dict[tuple[Any, ...], list[dict[str, int]]] = {}
        self._models: dict[tuple[Any, ...], Any] = {}
        # Finished trials never change: their encoded points are computed once per space.
        self._finished: dict[tuple[Any, ...], dict[int, _Encoded | None]] = {}
        self._lock = threading.RLock()
        # Build one surrogate now so that bad surrogate_options fail at construction.
        self._new_surrogate(np.zeros(1, dtype=np.int64))

    # --------------------------------------------------------------- Optuna API
    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        space: dict[str, BaseDistribution] = {}
        for name, distribution in self._search_space.calculate(study).items():
            if distribution.single():
                continue
            if not isinstance(
                distribution, CategoricalDistribution | FloatDistribution | IntDistribution
            ):
                raise InvalidProblemError(
                    f"Parameter '{name}' has a {type(distribution).__name__}, which QuboSampler "
                    "cannot encode; it supports FloatDistribution, IntDistribution and "
                    "CategoricalDistribution (trial.suggest_float / suggest_int / "
                    "suggest_categorical)."
                )
            space[name] = distribution
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        with self._lock:
            key, space = self._space_for(search_space)
            history = _History.collect(
                study, trial, space, search_space, self._finished.setdefault(key, {})
            )
            indices, attrs = self._propose(study, key, space, history)
            params = {
                name: _to_external(search_space[name], space.parameters[name].values[k])
                for name, k in indices.items()
            }
            self._share_proposal(study, trial, search_space, params)
            for attr, value in attrs.items():
                study._storage.set_trial_system_attr(trial._trial_id, f"qopt:{attr}", value)
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._warn_independent_sampling:
            complete = study._get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True
            )
            if len(complete) >= max(1, self._n_startup_trials):
                _logger.warning(
                    _INDEPENDENT_SAMPLING_WARNING.format(
                        param_name=param_name,
                        trial_number=trial.number,
                        independent_sampler_name=type(self._independent_sampler).__name__,
                        sampler_name=type(self).__name__,
                        fallback_reason=(
                            "the parameter is outside the relative search space (conditional or "
                            "dynamic parameters are not encoded by QuboSampler)"
                        ),
                    )
                )
        if any(param_name in c.terms for c in self._constraints) and isinstance(
            param_distribution, FloatDistribution | IntDistribution
        ):
            return self._sample_constrained_independent(trial, param_name, param_distribution)
        return self._independent_sampler.sample_independent(
            study, trial, param_name, param_distribution
        )

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self._constraints_func is not None and state in (TrialState.COMPLETE, TrialState.PRUNED):
            constraint_values = tuple(float(v) for v in self._constraints_func(trial))
            if any(math.isnan(v) for v in constraint_values):
                raise ValueError(
                    f"constraints_func returned NaN for trial {trial.number}: "
                    f"{constraint_values}. Return finite floats (<= 0 means satisfied)."
                )
            study._storage.set_trial_system_attr(
                trial._trial_id, _CONSTRAINTS_KEY, constraint_values
            )
        self._record_observed_quantile(study, trial, state, values)
        self._independent_sampler.after_trial(study, trial, state, values)

    def _record_observed_quantile(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        """Store where a model proposal's value landed among the trials completed before it.

        With ``qopt:predicted_quantile`` (the surrogate's forecast of the same, made before the
        trial ran) this gives an out-of-sample check of the surrogate on every model trial.
        """
        if "qopt:predicted_quantile" not in trial.system_attrs or len(study.directions) > 1:
            return
        if state == TrialState.FAIL or (
            state == TrialState.COMPLETE and values is not None and math.isnan(values[0])
        ):
            quantile = 1.0
        elif state == TrialState.COMPLETE and values is not None:
            sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
            earlier = [
                sign * float(t.value)
                for t in study._get_trials(
                    deepcopy=False, states=(TrialState.COMPLETE,), use_cache=True
                )
                if t.number < trial.number and t.value is not None
            ]
            quantile = predicted_quantile(sign * float(values[0]), np.array(earlier))
        else:
            return
        study._storage.set_trial_system_attr(trial._trial_id, "qopt:observed_quantile", quantile)

    # --------------------------------------------------------------- internals
    def _space_for(
        self, search_space: Mapping[str, BaseDistribution]
    ) -> tuple[tuple[Any, ...], SpaceEncoding]:
        names = sorted(search_space)
        key = tuple((name, repr(search_space[name])) for name in names)
        if key not in self._spaces:
            parameters: dict[str, Parameter] = {n: _to_parameter(n, search_space[n]) for n in names}
            # Categoricals are encoded by choice position: per-choice cost tables follow suit.
            choices = {
                n: d.choices
                for n, d in search_space.items()
                if isinstance(d, CategoricalDistribution)
            }
            constraints = [
                c.with_positions(choices)
                for c in self._constraints
                if set(c.terms) <= set(parameters)
            ]
            schemes = {n: s for n, s in self._encodings.items() if n in parameters}
            space = SpaceEncoding(
                parameters,
                scheme=self._encoding,
                schemes=schemes,
                n_bins=self._n_bins,
                max_values=self._max_values,
                constraints=constraints,
            )
            if self._max_bits is not None and space.n_bits > self._max_bits:
                raise ProblemTooLargeError(
                    self._too_large_message(space, f"max_bits={self._max_bits}")
                )
            self._spaces[key] = space
        return key, self._spaces[key]

    @staticmethod
    def _too_large_message(space: SpaceEncoding, limit: str) -> str:
        largest = sorted(space.parameters.values(), key=lambda p: -p.n_bits)[:3]
        names = ", ".join(f"'{p.name}' ({p.n_bits} bits)" for p in largest)
        return (
            f"The search space encodes to {space.n_bits} bits, over the limit ({limit}). "
            f"The largest parameters: {names}. Coarsen them (n_bins, max_values, or "
            "encodings={name: 'domain-wall'}), or use a solver that takes larger QUBOs "
            "(solver='sa')."
        )

    def _new_surrogate(self, groups: np.ndarray) -> Any:
        seed = int(self._rng.integers(2**31))
        options = {"seed": seed, **self._surrogate_options, "groups": groups}
        cls = FactorizationMachine if self._surrogate == "fm" else SparseBayesianQuadraticRegression
        try:
            return cls(**options)
        except TypeError as error:
            raise SolverConfigurationError(
                f"The 'surrogate_options' parameter of QuboSampler has an option that "
                f"{cls.__name__} does not take ({error})."
            ) from error

    def _propose(
        self, study: Study, key: tuple[Any, ...], space: SpaceEncoding, history: _History
    ) -> tuple[dict[str, int], dict[str, Any]]:
        taken = history.taken()
        n_start = max(self._n_startup_trials, space.coverage_size())
        if key not in self._designs:
            self._designs[key] = space.space_filling(n_start, self._rng)
        design = [p for p in self._designs[key] if tuple(p.values()) not in taken]
        finite = [v for v in history.values if np.isfinite(v).all()]
        if design and len(history.points) + len(history.pending) <= n_start:
            return design[0], {"phase": "start", "n_bits": space.n_bits}
        if len(finite) < 2:
            return self._random_untaken(space, taken), {"phase": "random", "n_bits": space.n_bits}
        return self._model_proposal(study, key, space, history, taken)

    def _random_untaken(self, space: SpaceEncoding, taken: set[tuple[int, ...]]) -> dict[str, int]:
        point = space.random_point(self._rng)
        for _ in range(200):
            if tuple(point.values()) not in taken or len(taken) >= space.size:
                break
            point = space.random_point(self._rng)
        return point

    def _targets(self, study: Study, history: _History) -> np.ndarray:
        """Values to minimize, one per observed row: scalarized, failures worst, liars."""
        values = np.array(history.values, dtype=float).reshape(len(history.values), -1)
        signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        values = values * signs
        if values.shape[1] > 1:
            finite_rows = np.isfinite(values).all(axis=1)
            lo = values[finite_rows].min(axis=0)
            span = np.maximum(values[finite_rows].max(axis=0) - lo, 1e-12)
            normalized = (values - lo) / span
            weights = self._rng.dirichlet(np.ones(values.shape[1]))
            weighted = normalized * weights
            with np.errstate(invalid="ignore"):
                y = weighted.max(axis=1) + _PAREGO_RHO * weighted.sum(axis=1)
            y[~finite_rows] = np.inf
        else:
            y = values[:, 0].copy()
        y[np.isnan(y)] = np.inf
        violation = np.array(history.violations)
        infeasible = violation > 0
        if infeasible.any():
            feasible = np.isfinite(y) & ~infeasible
            base = y[feasible] if feasible.any() else y[np.isfinite(y)]
            worst = float(base.max()) if base.size else 0.0
            spread = float(np.ptp(base)) if base.size > 1 else 1.0
            spread = spread or 1.0
            scaled = violation / violation.max()
            y = np.where(infeasible & np.isfinite(y), worst + spread * (1.0 + scaled), y)
        return y

    def _model_proposal(
        self,
        study: Study,
        key: tuple[Any, ...],
        space: SpaceEncoding,
        history: _History,
        taken: set[tuple[int, ...]],
    ) -> tuple[dict[str, int], dict[str, Any]]:
        from qopt.pipeline import solve

        y = self._targets(study, history)
        X = np.array(history.rows, dtype=float).reshape(len(history.rows), space.n_bits)
        observed_y = transform_targets(y, self._target_transform)
        if history.pending:
            # Constant liar: pending points take the worst observed value.
            X = np.vstack([X, np.array(history.pending_rows, dtype=float)])
            observed_y = np.concatenate(
                [observed_y, np.full(len(history.pending), observed_y.max())]
            )
        model = self._models.get(key)
        if model is None or self._surrogate == "fm":
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
            self._trust_region is not None
            and self._trust_region_restart is not None
            and incumbent is not None
        ):
            incumbent, restart, stalled = self._trust_centre(y, history)
            trust["trust_stalled"] = stalled
        if restart and incumbent is not None and self._trust_region is not None:
            ball = _HammingBall(space, incumbent, self._trust_region)
            local, solution, restart_attrs = self._solve_outside(space, bqm, energy, ball, taken)
            trust.update(restart_attrs)
            source = "trust-region-restart"
            # Only a proposal outside the stalled ball starts a new region; else climb on.
            restart = local is not None
            solution = solution if restart else None
        if not restart and self._trust_region is not None and incumbent is not None:
            # Casmopolitan's trust region: the surrogate's minimum over the untried points
            # near the incumbent.
            ball = _HammingBall(space, incumbent, self._trust_region)
            if self._trust_region_method == "solver":
                local, source, solution, ball_attrs = self._solve_ball(
                    space, bqm, energy, ball, taken
                )
                trust.update(ball_attrs)
            else:
                local, source = ball.best_untried(energy, taken), "trust-region-enumerated"
            if self._audit_trust_region and local is not None:
                exact = ball.best_untried(energy, taken)
                trust["ball_energy"] = energy.of(space.encode_indices(local))
                trust["ball_exact_energy"] = (
                    None if exact is None else energy.of(space.encode_indices(exact))
                )
        if local is not None:
            point = local
        else:
            formulation = space.formulation(bqm, energy=energy)
            solver = self._get_solver()
            params: dict[str, Any] = {}
            if "seed" in solver.parameters:
                params["seed"] = int(self._rng.integers(2**31))
            try:
                solution = solve(formulation, solver=solver, **params)
            except ProblemTooLargeError as error:
                raise ProblemTooLargeError(self._too_large_message(space, str(error))) from error
            point, source = self._pick(space, energy, solution.sampleset, taken, incumbent)
        bits = space.encode_indices(point)
        predicted = float(np.asarray(model.predict(bits[None, :])).reshape(-1)[0])
        seen = observed_y[: len(y)]
        if restart:
            trust["trust_restart"] = True
        attrs = {
            "phase": "model",
            "surrogate": self._surrogate,
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
        return point, attrs

    def _trust_centre(
        self, y: np.ndarray, history: _History
    ) -> tuple[dict[str, int] | None, bool, int]:
        """The trust region's centre, whether to restart it now, and the trials since its best.

        The region's trials are those from the last restart proposal on (all trials before the
        first restart); its centre is the best of them, and it restarts once
        ``trust_region_restart`` trials in a row have not improved on that centre (TuRBO's
        failure counter) and no restart proposal is still running.
        """
        starts = [i for i, flag in enumerate(history.restarts) if flag]
        first = starts[-1] if starts else 0
        region = np.where(np.isfinite(y[first:]), y[first:], np.inf)
        if not np.isfinite(region).any():
            return None, False, 0
        best = first + int(np.argmin(region))
        stalled = len(y) - 1 - best
        assert self._trust_region_restart is not None
        restart = stalled >= self._trust_region_restart and not history.pending_restart
        return history.points[best], restart, stalled

    def _solve_outside(
        self,
        space: SpaceEncoding,
        bqm: dimod.BinaryQuadraticModel,
        energy: DenseEnergy,
        ball: _HammingBall,
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

        solution, reads = self._solve_reads(space, model, energy, outside)
        candidates: dict[tuple[int, ...], float] = {}
        for row in reads:
            fixed = outside(row)
            key = tuple(space.decode_indices(fixed).values())
            if key not in taken:
                candidates.setdefault(key, energy.of(fixed))
        attrs = {"trust_restart_reads": len(reads), "trust_restart_candidates": len(candidates)}
        if not candidates:
            return None, solution, attrs
        best = min(candidates, key=lambda k: (candidates[k], k))
        return dict(zip(list(space.parameters), best, strict=True)), solution, attrs

    def _solve_reads(
        self,
        space: SpaceEncoding,
        model: ConstrainedQUBO,
        energy: DenseEnergy,
        fix: Callable[[np.ndarray], np.ndarray],
    ) -> tuple[Any, np.ndarray]:
        """Solve a trust-region subproblem: the pipeline's Solution and its distinct raw reads.

        ``model`` goes through :func:`qopt.pipeline.solve` with ``fix`` (bits -> bits) as the
        repair. With ``solver="sa"`` and no ``num_reads`` given, 64 reads; constraint weights
        of half the surrogate's largest one-bit change (the provable "auto" weights froze the
        annealer; docs/optuna.md).
        """
        from qopt.pipeline import Formulation, solve

        def repair(sample: Mapping[Any, int]) -> dict[Any, int]:
            row = np.array([sample[i] for i in range(space.n_bits)], dtype=np.int8)
            return {i: int(b) for i, b in enumerate(fix(row))}

        solver = self._get_solver()
        params: dict[str, Any] = {}
        if "seed" in solver.parameters:
            params["seed"] = int(self._rng.integers(2**31))
        if (
            self._solver_spec == "sa"
            and "num_reads" not in self._solver_options
            and "num_reads" in solver.parameters
        ):
            params["num_reads"] = _TRUST_READS
        try:
            penalty = _TRUST_PENALTY * _largest_flip(energy) or 1.0
            solution = solve(
                Formulation(model, repair=repair, penalty=penalty), solver=solver, **params
            )
        except ProblemTooLargeError as error:
            raise ProblemTooLargeError(self._too_large_message(space, str(error))) from error
        sampleset = solution.sampleset
        columns = [sampleset.variables.index(i) for i in range(space.n_bits)]
        reads = np.unique(np.asarray(sampleset.record.sample, dtype=np.int8)[:, columns], axis=0)
        return solution, reads

    def _solve_ball(
        self,
        space: SpaceEncoding,
        bqm: dimod.BinaryQuadraticModel,
        energy: DenseEnergy,
        ball: _HammingBall,
        taken: set[tuple[int, ...]],
    ) -> tuple[dict[str, int] | None, str, Any, dict[str, Any]]:
        """The trust-region proposal from the solver: ``(point, source, solution, attrs)``.

        The surrogate's QUBO with the encoding's constraints, the known ``constraints`` and the
        ball ``1 <= distance <= r`` as one more linear inequality goes through
        :func:`qopt.pipeline.solve`; every read is repaired into the ball (:meth:`_HammingBall.
        repair`), and the untried read of lowest surrogate energy wins. When every read is a
        tried point, the ball is enumerated instead (``trust_fallback``); ``point`` is None when
        the ball holds no untried feasible point (the caller then solves the whole space).
        """
        anchor = ball.anchor(energy)
        if anchor is None:  # no feasible point in the ball but the incumbent
            return None, "", None, {}
        model = space.constrained_qubo(bqm)
        terms, lb, ub = ball.inequality()
        model.add_inequality(terms, lb=lb, ub=ub, label="trust region")
        solution, reads = self._solve_reads(
            space, model, energy, lambda row: ball.repair(row, energy, anchor)
        )
        candidates: dict[tuple[int, ...], tuple[float, bool]] = {}
        for row in reads:
            fixed = ball.repair(row, energy, anchor)
            key = tuple(space.decode_indices(fixed).values())
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

    def _get_solver(self) -> dimod.Sampler:
        if self._solver is None:
            from qopt.solvers import get_solver

            assert isinstance(self._solver_spec, str)
            self._solver = get_solver(self._solver_spec, **self._solver_options)
        return self._solver

    def _pick(
        self,
        space: SpaceEncoding,
        energy: DenseEnergy,
        sampleset: dimod.SampleSet,
        taken: set[tuple[int, ...]],
        incumbent: dict[str, int] | None = None,
    ) -> tuple[dict[str, int], str]:
        """The lowest-surrogate repaired sample not yet taken, else a neighbour, else random."""
        columns = [sampleset.variables.index(i) for i in range(space.n_bits)]
        bits = np.unique(np.asarray(sampleset.record.sample, dtype=np.int8)[:, columns], axis=0)
        candidates: dict[tuple[int, ...], float] = {}
        for row in bits:
            repaired = space.repair(row, energy=energy)
            point = tuple(space.decode_indices(repaired).values())
            candidates.setdefault(point, energy.of(repaired))
        ranked = sorted(candidates, key=lambda p: (candidates[p], p))
        names = list(space.parameters)
        for rank, point in enumerate(ranked):
            if point not in taken:
                return dict(
                    zip(names, point, strict=True)
                ), "solver-best" if rank == 0 else "solver-next"
            if rank == 0 and self._local_search and incumbent is not None:
                # The model's optimum is already evaluated: rather than jump to another of its
                # minima, perturb the incumbent where the model expects most (a Hamming trust
                # region, as in Casmopolitan: Wan et al., ICML 2021).
                local = self._best_neighbour(space, energy, incumbent, taken)
                if local is not None:
                    return local, "incumbent-neighbour"
        if ranked:
            local = self._best_neighbour(
                space, energy, dict(zip(names, ranked[0], strict=True)), taken
            )
            if local is not None:
                return local, "neighbour"
        if len(taken) >= space.size and ranked:
            return dict(zip(names, ranked[0], strict=True)), "duplicate (space exhausted)"
        return self._random_untaken(space, taken), "random"

    @staticmethod
    def _best_neighbour(
        space: SpaceEncoding,
        energy: DenseEnergy,
        centre: dict[str, int],
        taken: set[tuple[int, ...]],
        radius: int = 2,
        beam: int = 8,
    ) -> dict[str, int] | None:
        """The untaken feasible point of lowest model energy within ``radius`` steps.

        Ring by ring: the nearest ring holding an untaken point wins; the ``beam`` points of
        lowest energy of each ring seed the next.
        """
        frontier = [centre]
        seen = {tuple(centre.values())}
        for _ in range(radius):
            scored = []
            for here in frontier:
                for neighbour in space.neighbours(here):
                    key = tuple(neighbour.values())
                    if key in seen or space.constraint_violation(neighbour) > 1e-9:
                        continue
                    seen.add(key)
                    scored.append((energy.of(space.encode_indices(neighbour)), key, neighbour))
            scored.sort(key=lambda s: (s[0], s[1]))
            for _, key, neighbour in scored:
                if key not in taken:
                    return neighbour
            frontier = [s[2] for s in scored[:beam]]
        return None

    def _share_proposal(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: Mapping[str, BaseDistribution],
        params: Mapping[str, Any],
    ) -> None:
        internal = {n: search_space[n].to_internal_repr(v) for n, v in params.items()}
        text = json.dumps(internal)
        for i in range(0, len(text), _ATTR_MAX_LENGTH):
            study._storage.set_trial_system_attr(
                trial._trial_id,
                f"{_PROPOSAL_KEY}:{i // _ATTR_MAX_LENGTH}",
                text[i : i + _ATTR_MAX_LENGTH],
            )

    def _sample_constrained_independent(
        self, trial: FrozenTrial, name: str, distribution: FloatDistribution | IntDistribution
    ) -> Any:
        """A value for a constrained parameter outside the relative space (the first trial).

        The other parameters of each constraint are unknown yet, so each unset one is allotted
        an equal share of what the set ones leave: the constraint holds whenever every unset
        parameter can fit within its share (true of budgets over non-negative sizes).
        """
        values = (
            SpaceEncoding(
                {name: _to_parameter(name, distribution)},
                n_bins=self._n_bins,
                max_values=self._max_values,
            )
            .parameters[name]
            .values
        )
        known = trial.params
        penalties = np.zeros(len(values))
        for c in self._constraints:
            if name not in c.terms:
                continue
            fixed = sum(
                _contribution(c, n, known[n], trial.distributions[n])
                for n in c.terms
                if n in known and n != name
            )
            unset = sum(1 for n in c.terms if n not in known)
            for k, v in enumerate(values):
                share = _contribution(c, name, v, distribution)
                lb = None if c.lb is None else (c.lb - fixed) / unset
                ub = None if c.ub is None else (c.ub - fixed) / unset
                penalties[k] += (0.0 if lb is None else max(0.0, lb - share)) + (
                    0.0 if ub is None else max(0.0, share - ub)
                )
        best = np.flatnonzero(penalties <= penalties.min() + 1e-12)
        return _to_external(distribution, values[int(self._rng.choice(best))])


_Encoded = tuple[dict[str, int], np.ndarray]


class _HammingBall:
    """The points at distance ``1 .. radius`` from ``centre`` (value indices) on ``space``.

    The distance counts the one-hot parameters whose value differs plus, for domain-wall
    parameters, the index steps between the values (the Hamming distance of their bits).
    On valid bit patterns it is linear in the bits (:meth:`inequality`), which is what lets
    the trust region live inside the QUBO; :meth:`best_untried` finds the same minimum by
    enumeration.
    """

    def __init__(self, space: SpaceEncoding, centre: Mapping[str, int], radius: int) -> None:
        self.space = space
        self.centre = dict(centre)
        self.radius = radius
        self._one_hot = {n for n, p in space.parameters.items() if p.scheme == "one-hot"}

    def distance(self, indices: Mapping[str, int]) -> int:
        """Distance of a point (value indices) from the centre."""
        return sum(
            int(indices[n] != c) if n in self._one_hot else abs(indices[n] - c)
            for n, c in self.centre.items()
        )

    def inequality(self) -> tuple[dict[Hashable, float], float, float]:
        """``(terms, lb, ub)`` over the bits with ``lb <= terms . x <= ub`` iff the valid
        pattern ``x`` lies in the ball: the distance is ``constant + terms . x``."""
        terms: dict[Hashable, float] = {}
        constant = 0
        centre_bits = self.space.encode_indices(self.centre)
        for name, p in self.space.parameters.items():
            if p.n_bits == 0:
                continue
            if name in self._one_hot:
                # Changed unless the centre's own bit is on: 1 - x[centre].
                constant += 1
                terms[p.offset + self.centre[name]] = -1.0
                continue
            for j in range(p.offset, p.offset + p.n_bits):
                # Bit j differs from the centre's: x_j when it is off there, 1 - x_j when on.
                if centre_bits[j]:
                    constant += 1
                    terms[j] = -1.0
                else:
                    terms[j] = 1.0
        return terms, float(1 - constant), float(self.radius - constant)

    def _neighbours(self, indices: Mapping[str, int]) -> list[dict[str, int]]:
        """Points one step away in this distance (one-hot: any other value; else +-1)."""
        result = []
        for name, p in self.space.parameters.items():
            here = indices[name]
            if name in self._one_hot:
                steps = [k for k in range(p.n_values) if k != here]
            else:
                steps = [k for k in (here - 1, here + 1) if 0 <= k < p.n_values]
            result += [{**indices, name: k} for k in steps]
        return result

    def points(self, energy: DenseEnergy) -> list[tuple[float, tuple[int, ...], dict[str, int]]]:
        """Every feasible ball point as ``(energy, key, indices)``, ring by ring.

        Infeasible points are walked through (a budget may be met again two steps away);
        rings larger than ``_BALL_EXACT`` keep their ``_TRUST_BEAM`` lowest as seeds.
        """
        space = self.space
        frontier = [self.centre]
        seen = {tuple(self.centre.values())}
        found = []
        for _ in range(self.radius):
            ring = []
            for here in frontier:
                for neighbour in self._neighbours(here):
                    key = tuple(neighbour.values())
                    if key in seen:
                        continue
                    seen.add(key)
                    value = energy.of(space.encode_indices(neighbour))
                    ring.append((value, key, neighbour))
            found += [r for r in ring if space.constraint_violation(r[2]) <= 1e-9]
            if len(ring) > _BALL_EXACT:
                ring.sort(key=lambda r: (r[0], r[1]))
                ring = ring[:_TRUST_BEAM]
            frontier = [r[2] for r in ring]
        return found

    def best_untried(
        self, energy: DenseEnergy, taken: set[tuple[int, ...]]
    ) -> dict[str, int] | None:
        """The untried feasible ball point of lowest energy (exact up to ``_BALL_EXACT``)."""
        options = [p for p in self.points(energy) if p[1] not in taken]
        return min(options, key=lambda p: (p[0], p[1]))[2] if options else None

    def anchor(self, energy: DenseEnergy) -> dict[str, int] | None:
        """A feasible ball point (the lowest of the nearest ring holding one), or None."""
        space = self.space
        ring = [
            (energy.of(space.encode_indices(n)), tuple(n.values()), n)
            for n in self._neighbours(self.centre)
            if space.constraint_violation(n) <= 1e-9
        ]
        if ring:
            return min(ring, key=lambda r: (r[0], r[1]))[2]
        found = self.points(energy)
        return min(found, key=lambda r: (r[0], r[1]))[2] if found else None

    def push_out(self, indices: Mapping[str, int], energy: DenseEnergy) -> dict[str, int] | None:
        """A feasible point beyond the radius reached from ``indices`` by steps away from the
        centre (each the one of least constraint violation, then surrogate energy), or None.
        """
        space = self.space
        point = dict(indices)
        distance = self.distance(point)
        while distance <= self.radius:
            steps = []
            for name, p in space.parameters.items():
                here, c = point[name], self.centre[name]
                if name in self._one_hot:
                    values = [k for k in range(p.n_values) if k != c] if here == c else []
                else:
                    away = here + (1 if here > c else -1) if here != c else None
                    values = (
                        [away]
                        if away is not None and 0 <= away < p.n_values
                        else [k for k in (c - 1, c + 1) if 0 <= k < p.n_values and here == c]
                    )
                for k in values:
                    step = {**point, name: k}
                    key = (
                        space.constraint_violation(step),
                        energy.of(space.encode_indices(step)),
                        name,
                        k,
                    )
                    steps.append((key, step))
            if not steps:
                return None
            point = min(steps, key=lambda s: s[0])[1]
            distance = self.distance(point)
        return point if space.constraint_violation(point) <= 1e-9 else None

    def repair(
        self, bits: np.ndarray, energy: DenseEnergy, anchor: Mapping[str, int]
    ) -> np.ndarray:
        """Any bit vector -> a valid, feasible pattern inside the ball.

        The encoding's repair first (valid patterns, known constraints); a point beyond the
        radius then steps back towards the centre, each step the one of least constraint
        violation and surrogate energy; the centre itself, or a point still infeasible,
        becomes ``anchor``.
        """
        space = self.space
        row = space.repair(bits, energy=energy)
        indices = space.decode_indices(row)
        distance = self.distance(indices)
        while distance > self.radius:
            steps = []
            for name, c in self.centre.items():
                here = indices[name]
                if here == c:
                    continue
                back = c if name in self._one_hot else here + (1 if c > here else -1)
                step = {**indices, name: back}
                steps.append(
                    (space.constraint_violation(step), energy.of(space.encode_indices(step)), name)
                )
            _, _, name = min(steps)
            c = self.centre[name]
            here = indices[name]
            indices[name] = c if name in self._one_hot else here + (1 if c > here else -1)
            distance -= 1
        if distance == 0 or space.constraint_violation(indices) > 1e-9:
            indices = dict(anchor)
        return space.encode_indices(indices)


def _contribution(
    constraint: ParameterConstraint, name: str, value: Any, distribution: BaseDistribution
) -> float:
    """What parameter ``name`` at ``value`` adds to ``constraint``, in any of its term forms."""
    term = constraint.terms[name]
    if isinstance(term, Mapping | float):
        return constraint.contribution(name, value)
    if isinstance(distribution, CategoricalDistribution):
        position = distribution.choices.index(value)
    elif isinstance(distribution, IntDistribution):
        position = (int(value) - distribution.low) // distribution.step
    else:
        raise InvalidProblemError(
            f"Constraint {constraint.name} gives parameter '{name}' costs by value position, "
            f"which a {type(distribution).__name__} does not have; use a coefficient."
        )
    return float(term[position]) if 0 <= position < len(term) else 0.0


class _History:
    """The study's trials on one search space, as value indices (``points``) and bits (``rows``)."""

    def __init__(self) -> None:
        self.points: list[dict[str, int]] = []
        self.rows: list[np.ndarray] = []
        self.pending_rows: list[np.ndarray] = []
        # Model trials' forecasts (made before they ran) and outcomes, as quantiles.
        self.forecasts: list[float] = []
        self.outcomes: list[float] = []
        self.values: list[tuple[float, ...]] = []
        self.violations: list[float] = []
        self.pending: list[dict[str, int]] = []
        self.bad: list[dict[str, int]] = []
        # Per observed point: whether it was a trust-region restart proposal.
        self.restarts: list[bool] = []
        self.pending_restart = False

    def taken(self) -> set[tuple[int, ...]]:
        return {tuple(p.values()) for p in (*self.points, *self.pending, *self.bad)}

    @classmethod
    def collect(
        cls,
        study: Study,
        trial: FrozenTrial,
        space: SpaceEncoding,
        search_space: Mapping[str, BaseDistribution],
        cache: dict[int, _Encoded | None] | None = None,
    ) -> _History:
        """The trials of ``study`` other than ``trial``; ``cache`` keeps finished trials' points."""
        history = cls()
        n_objectives = len(study.directions)
        cache = {} if cache is None else cache
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            finished = t.state.is_finished()
            if finished and t._trial_id in cache:
                encoded = cache[t._trial_id]
            else:
                params = _params_of(t, search_space)
                encoded = None
                if params is not None:
                    point = space.indices_of(params)
                    encoded = (point, space.encode_indices(point))
                if finished:
                    cache[t._trial_id] = encoded
            if encoded is None:
                continue
            point, row = encoded
            forecast = t.system_attrs.get("qopt:predicted_quantile")
            outcome = t.system_attrs.get("qopt:observed_quantile")
            if forecast is not None and outcome is not None:
                history.forecasts.append(float(forecast))
                history.outcomes.append(float(outcome))
            if t.state == TrialState.COMPLETE and t.values is not None:
                history.points.append(point)
                history.rows.append(row)
                history.values.append(tuple(float(v) for v in t.values))
                history.violations.append(float(sum(max(0.0, v) for v in t.constraints.values())))
                history.restarts.append(bool(t.system_attrs.get("qopt:trust_restart", False)))
            elif t.state in (TrialState.FAIL, TrialState.PRUNED):
                # Worse than any completed trial: the surrogate learns to avoid the region.
                # NaN, not inf: _targets maps NaN to +inf after the direction's sign, so a
                # failure is worst in maximize studies too.
                history.points.append(point)
                history.rows.append(row)
                history.values.append((math.nan,) * n_objectives)
                history.violations.append(0.0)
                history.bad.append(point)
                history.restarts.append(bool(t.system_attrs.get("qopt:trust_restart", False)))
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                history.pending.append(point)
                history.pending_rows.append(row)
                if t.system_attrs.get("qopt:trust_restart", False):
                    history.pending_restart = True
        return history


def _params_of(
    trial: FrozenTrial, search_space: Mapping[str, BaseDistribution]
) -> dict[str, Any] | None:
    """The trial's point on the search space (a running one's proposal), or None.

    Categorical values come back as choice indices, numbers as themselves: the form
    :func:`_to_parameter` encodes.
    """
    internal: dict[str, float] = {}
    if not trial.state.is_finished():
        chunks = []
        i = 0
        while (chunk := trial.system_attrs.get(f"{_PROPOSAL_KEY}:{i}")) is not None:
            chunks.append(chunk)
            i += 1
        if chunks:
            proposal = json.loads("".join(chunks))
            internal.update({n: v for n, v in proposal.items() if n in search_space})
    for name, value in trial.params.items():
        if name in search_space:
            if trial.distributions.get(name) != search_space[name]:
                return None
            internal[name] = search_space[name].to_internal_repr(value)
    if set(internal) != set(search_space):
        return None
    params: dict[str, Any] = {}
    for name, value in internal.items():
        distribution = search_space[name]
        if not distribution._contains(value):
            return None
        params[name] = int(value) if isinstance(distribution, CategoricalDistribution) else value
    return params


def _to_parameter(name: str, distribution: BaseDistribution) -> Parameter:
    if isinstance(distribution, CategoricalDistribution):
        return CategoricalParameter(tuple(range(len(distribution.choices))))
    if isinstance(distribution, IntDistribution):
        return IntParameter(
            distribution.low, distribution.high, distribution.step, distribution.log
        )
    if isinstance(distribution, FloatDistribution):
        return FloatParameter(
            distribution.low, distribution.high, distribution.step, distribution.log
        )
    raise InvalidProblemError(
        f"Parameter '{name}' has a {type(distribution).__name__}, which QuboSampler cannot "
        "encode; it supports FloatDistribution, IntDistribution and CategoricalDistribution."
    )


def _to_external(distribution: BaseDistribution, value: Any) -> Any:
    """A grid value as Optuna expects it: the choice, a Python int, or a Python float."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[int(value)]
    if isinstance(distribution, IntDistribution):
        return int(value)
    return float(value)


def _largest_flip(energy: DenseEnergy) -> float:
    """The largest change of ``energy`` that flipping one bit can make, in any state."""
    up = np.maximum(energy.J, 0.0).sum(axis=1)
    down = np.minimum(energy.J, 0.0).sum(axis=1)
    flips = np.maximum(np.abs(energy.h + up), np.abs(energy.h + down))
    return float(flips.max(initial=0.0))


def _wall(solution: Any) -> float | None:
    record = getattr(solution, "record", None)
    wall = getattr(record, "wall_s", None)
    return None if wall is None else float(wall)
