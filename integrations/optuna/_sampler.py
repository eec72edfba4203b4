"""QuboSampler: Optuna trials -> :mod:`qopt.search` proposal engine -> parameters.

The algorithm lives in :mod:`qopt.search` (framework-free); this module only translates a
study's trials into the engine's :class:`~qopt.search.History`, its proposals back into Optuna
parameters, and its diagnostics into trial system attributes.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
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

from qopt._validation import check_no_unknown_keywords
from qopt.encoding import (
    CategoricalParameter,
    FloatParameter,
    IntParameter,
    Parameter,
    ParameterConstraint,
    SpaceEncoding,
)
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.optuna_trials import other_claims, record_observed_quantile, set_system_attr
from qopt.search import (
    CLAIM_ATTR,
    Claim,
    EncodingOptions,
    History,
    ProposalEngine,
    check_constraints,
    claim_proposal,
    exhaustion_message,
    feasible_points,
    is_exhausted,
    point_key,
    proposal_attrs,
    read_proposal,
    share_violations,
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
#: Optuna's system attribute for black-box constraint values (old list format).
_CONSTRAINTS_KEY = "constraints"


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
      sample is used, then a neighbour of the best, then a random unevaluated point. Once
      every point has been tried the study stops, with one warning that names the grid
      (``stop_when_exhausted``).
    * Failed trials (including NaN objectives) and pruned trials count as worse than every
      completed one; black-box constraints (``constraints_func`` or
      :meth:`optuna.trial.Trial.set_constraint`) make infeasible trials rank after feasible
      ones, ordered by violation.
    * Running trials are pending points: their proposals are stored on the trial (system
      attribute ``"qopt:proposal"``), never proposed again, and enter the fit at the worst
      observed value (constant liar); each proposal is also claimed in the storage before it
      is returned (``"qopt:claim"``, :func:`qopt.search.claim_proposal`), so threads
      (``n_jobs > 1``) and processes sharing a storage never evaluate one point twice.
    * The relative search space is the intersection of the completed trials' spaces; other
      parameters (conditional, dynamic) go to ``independent_sampler`` with Optuna's warning,
      once per parameter.
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
            independent sampler after the start (once per parameter).
        stop_when_exhausted: Once every point of the (gridded) search space has been tried or
            is running, say so once (naming the grid and how to refine it: ``n_bins``,
            ``max_values`` or a ``step``) and stop the study, as Optuna's ``GridSampler`` does.
            Trials that also sample parameters outside the space (conditional ones) never
            stop it. ``False``: keep proposing, repeating points.
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
            docs/benchmarks/nas.md).
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
            Off by default: on NAS-Bench-201 it did not help (docs/benchmarks/nas.md).

    Raises:
        SolverConfigurationError: A keyword or an option is unknown (the valid ones listed) or
            out of range, ``solver_options`` included.
        UnknownSolverError: ``solver`` is not a registered name.
        InvalidProblemError: At the first trial that defines the search space: a known
            constraint names a parameter the trials do not suggest (a typo; the parameters
            listed), or no point satisfies the constraints.

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
        stop_when_exhausted: bool = True,
        local_search: bool = False,
        trust_region: int | None = None,
        trust_region_method: str = "solver",
        trust_region_restart: int | None = None,
        **unknown: Any,
    ) -> None:
        owner = type(self).__name__
        check_no_unknown_keywords(owner, unknown, QuboSampler)
        constraints = check_constraints(constraints, owner)
        if constraints_func is not None and not callable(constraints_func):
            raise SolverConfigurationError(
                f"The 'constraints_func' parameter of {owner} must be callable or None. "
                f"Got {constraints_func!r} instead."
            )
        self._encoding = EncodingOptions(
            encoding=encoding,
            encodings=dict(encodings or {}),
            n_bins=n_bins,
            max_values=max_values,
            max_bits=max_bits,
            owner=owner,
        )
        self._engine = ProposalEngine(
            solver=solver,
            solver_options=solver_options,
            surrogate=surrogate,
            surrogate_options=surrogate_options,
            target_transform=target_transform,
            n_startup_trials=n_startup_trials,
            seed=seed,
            local_search=local_search,
            trust_region=trust_region,
            trust_region_method=trust_region_method,
            trust_region_restart=trust_region_restart,
            owner=owner,
        )
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._constraints = constraints
        self._constraints_func = constraints_func
        self._warn_independent_sampling = bool(warn_independent_sampling)
        self._stop_when_exhausted = bool(stop_when_exhausted)
        self._search_space = IntersectionSearchSpace()
        self._spaces: dict[tuple[Any, ...], SpaceEncoding] = {}
        # Finished trials never change: their encoded points are computed once per space.
        self._finished: dict[tuple[Any, ...], dict[int, _Encoded | None]] = {}
        self._lock = threading.RLock()
        # Per space: its feasible points when constrained (enumerated once, None when too
        # many); the spaces whose exhaustion was said; each proposed trial's space.
        self._feasible: dict[tuple[Any, ...], frozenset[tuple[int, ...]] | None] = {}
        self._said_exhausted: set[tuple[Any, ...]] = set()
        self._said_cannot_stop: set[tuple[Any, ...]] = set()
        self._trial_spaces: dict[int, tuple[tuple[Any, ...], dict[str, BaseDistribution]]] = {}
        # Parameters whose independent sampling was warned about (once each).
        self._said_independent: set[str] = set()

    # A sampler is pickled with its study (Ray Tune's OptunaSearch saves and restores both;
    # optuna's InMemoryStorage drops its lock the same way).
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # --------------------------------------------------------------- Optuna API
    def reseed_rng(self) -> None:
        self._engine.rng = np.random.default_rng()
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
            key, space = self._space_for(study, search_space)
            cache = self._finished.setdefault(key, {})
            history = _collect_history(study, trial, space, search_space, cache)
            signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]
            if self._stop_when_exhausted:
                self._trial_spaces[trial.number] = (key, dict(search_space))
            # Claimed in the storage before it is returned: processes sharing the study never
            # evaluate one point twice (qopt.search.claims).
            proposal = claim_proposal(
                self._engine,
                space,
                history,
                signs,
                key=key,
                owner=trial.number,
                write=lambda claim: set_system_attr(study, trial, CLAIM_ATTR, claim.to_attr()),
                others=lambda: _claims(study, trial, space, search_space, cache),
            )
            params = {
                name: _to_external(search_space[name], space.parameters[name].values[k])
                for name, k in proposal.indices.items()
            }
            self._share_proposal(study, trial, search_space, params)
            for attr, value in proposal.info.items():
                set_system_attr(study, trial, f"qopt:{attr}", value)
        return params

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        if self._warn_independent_sampling and param_name not in self._said_independent:
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if len(complete) >= max(1, self._engine.n_startup_trials):
                self._said_independent.add(param_name)
                _logger.warning(
                    _INDEPENDENT_SAMPLING_WARNING.format(
                        param_name=param_name,
                        trial_number=trial.number,
                        independent_sampler_name=type(self._independent_sampler).__name__,
                        sampler_name=type(self).__name__,
                        fallback_reason=(
                            "the parameter is outside the relative search space (conditional or "
                            "dynamic parameters are not encoded by QuboSampler; said once per "
                            "parameter)"
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
                raise InvalidProblemError(
                    f"constraints_func returned NaN for trial {trial.number}: "
                    f"{constraint_values}. Return finite floats (<= 0 means satisfied)."
                )
            set_system_attr(study, trial, _CONSTRAINTS_KEY, constraint_values)
        record_observed_quantile(study, trial, state, values)
        if self._stop_when_exhausted:
            self._stop_if_exhausted(study, trial)
        self._independent_sampler.after_trial(study, trial, state, values)

    def _stop_if_exhausted(self, study: Study, trial: FrozenTrial) -> None:
        """Stop the study once every point of the trial's search space has been tried (or is
        running), as Optuna's ``GridSampler`` does; said once per space."""
        with self._lock:
            key, search_space = self._trial_spaces.pop(trial.number, (None, {}))
            if key is None:
                return
            space = self._spaces[key]
            varied = {n for n, d in trial.distributions.items() if not d.single()}
            if varied != set(search_space):
                return  # some parameters were sampled outside the space: no repeat
            n_points = self._n_points(key, space)
            if n_points is None or len(study.get_trials(deepcopy=False)) < n_points:
                return
            cache = self._finished.setdefault(key, {})
            taken = _collect_history(study, trial, space, search_space, cache).taken()
            own = _encoded(trial, space, search_space, {})
            if own is not None:
                taken.add(point_key(own[0]))
            if not self._exhausted(key, space, taken):
                return
            self._say_exhausted(key, space)
        try:
            study.stop()
        except RuntimeError:  # no study.optimize loop: ask/tell, e.g. Ray Tune's OptunaSearch
            self._say_cannot_stop(key, n_points)

    def _say_cannot_stop(self, key: tuple[Any, ...], n_points: int) -> None:
        with self._lock:
            if key in self._said_cannot_stop:
                return
            self._said_cannot_stop.add(key)
        _logger.warning(
            f"{type(self).__name__} cannot stop this study: it is driven by ask/tell (Ray "
            "Tune's OptunaSearch among others), not study.optimize, so its next proposals "
            f"repeat points already tried. End it after {n_points} trials (Ray Tune: "
            f"TuneConfig(num_samples={n_points})), or refine the grid."
        )

    def _n_points(self, key: tuple[Any, ...], space: SpaceEncoding) -> int | None:
        """The number of feasible points of a space (None: constrained and too large)."""
        if not space.constraints:
            return space.size
        if key not in self._feasible:
            self._feasible[key] = feasible_points(space)
        feasible = self._feasible[key]
        return None if feasible is None else len(feasible)

    def _exhausted(
        self, key: tuple[Any, ...], space: SpaceEncoding, taken: set[tuple[int, ...]]
    ) -> bool:
        n_points = self._n_points(key, space)
        return n_points is not None and is_exhausted(space, taken, self._feasible.get(key))

    def _say_exhausted(self, key: tuple[Any, ...], space: SpaceEncoding) -> None:
        if key not in self._said_exhausted:
            self._said_exhausted.add(key)
            n_points = self._n_points(key, space)
            assert n_points is not None
            _logger.warning(exhaustion_message(space, type(self).__name__, n_points))

    # --------------------------------------------------------------- internals
    def _space_for(
        self, study: Study, search_space: Mapping[str, BaseDistribution]
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
                for c in (self._constraint_on(c, study, search_space) for c in self._constraints)
                if c is not None
            ]
            unknown = sorted(set(self._encoding.encodings) - set(search_space))
            if unknown:
                suggested = {n for t in study.get_trials(deepcopy=False) for n in t.params}
                unknown = [n for n in unknown if n not in suggested]
            if unknown:
                raise SolverConfigurationError(
                    f"The 'encodings' parameter of {type(self).__name__} names parameter(s) "
                    f"{unknown}, which no trial suggests. The parameters are: "
                    f"{sorted(suggested)}."
                )
            self._spaces[key] = self._encoding.encode(parameters, constraints)
        return key, self._spaces[key]

    def _constraint_on(
        self,
        constraint: ParameterConstraint,
        study: Study,
        search_space: Mapping[str, BaseDistribution],
    ) -> ParameterConstraint | None:
        """``constraint`` on the relative search space: parameters every trial gives one value
        move into its bounds; ``None`` when none is left and it holds. A name no trial
        suggests (a typo) is an error that lists the study's parameters."""
        outside = [n for n in constraint.terms if n not in search_space]
        if not outside:
            return constraint
        everywhere = self._search_space.calculate(study)
        unknown = sorted(n for n in outside if n not in everywhere or not everywhere[n].single())
        if unknown:
            raise InvalidProblemError(
                f"The 'constraints' parameter of {type(self).__name__}: constraint "
                f"{constraint.name} names parameter(s) {unknown}, which not every trial "
                f"suggests. The parameters are: {sorted(everywhere)}. A known constraint may "
                "only name parameters that every trial suggests; check the spelling."
            )
        contributions = {
            n: _contribution(constraint, n, _only_value(everywhere[n]), everywhere[n])
            for n in outside
        }
        fixed = constraint.with_fixed(contributions)
        if fixed is None and constraint.violation(sum(contributions.values())) > 1e-9:
            raise InvalidProblemError(
                f"Constraint {constraint.name} is violated by the only values its parameters "
                f"take ({sorted(outside)}); no point satisfies it. Loosen the bound."
            )
        return fixed

    def _share_proposal(
        self,
        study: Study,
        trial: FrozenTrial,
        search_space: Mapping[str, BaseDistribution],
        params: Mapping[str, Any],
    ) -> None:
        internal = {n: search_space[n].to_internal_repr(v) for n, v in params.items()}
        for key, chunk in proposal_attrs(internal, _PROPOSAL_KEY).items():
            set_system_attr(study, trial, key, chunk)

    def _sample_constrained_independent(
        self, trial: FrozenTrial, name: str, distribution: FloatDistribution | IntDistribution
    ) -> Any:
        """A value for a constrained parameter outside the relative space (the first trial):
        one within its equal share of each constraint (:func:`qopt.search.share_violations`)."""
        values = (
            self._encoding.encode({name: _to_parameter(name, distribution)}).parameters[name].values
        )
        distributions = {**trial.distributions, name: distribution}
        penalties = share_violations(
            name,
            values,
            self._constraints,
            trial.params,
            lambda c, n, v: _contribution(c, n, v, distributions[n]),
        )
        best = np.flatnonzero(penalties <= penalties.min() + 1e-12)
        return _to_external(distribution, values[int(self._engine.rng.choice(best))])


_Encoded = tuple[dict[str, int], np.ndarray]


def _only_value(distribution: BaseDistribution) -> Any:
    """The value of a single-valued distribution."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.choices[0]
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    return distribution.low


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


def _collect_history(
    study: Study,
    trial: FrozenTrial,
    space: SpaceEncoding,
    search_space: Mapping[str, BaseDistribution],
    cache: dict[int, _Encoded | None],
) -> History:
    """The trials of ``study`` other than ``trial`` as a :class:`qopt.search.History`.

    ``cache`` keeps finished trials' encoded points by trial number.
    """
    history = History()
    n_objectives = len(study.directions)
    for t in study.get_trials(deepcopy=False):
        if t.number == trial.number:
            continue
        encoded = _encoded(t, space, search_space, cache)
        if encoded is None:
            continue
        point, row = encoded
        forecast = t.system_attrs.get("qopt:predicted_quantile")
        outcome = t.system_attrs.get("qopt:observed_quantile")
        if forecast is not None and outcome is not None:
            history.add_forecast(forecast, outcome)
        restart = bool(t.system_attrs.get("qopt:trust_restart", False))
        if t.state == TrialState.COMPLETE and t.values is not None:
            violation = sum(max(0.0, v) for v in t.constraints.values())
            history.add_complete(point, row, t.values, violation=violation, restart=restart)
        elif t.state in (TrialState.FAIL, TrialState.PRUNED):
            history.add_failed(point, row, n_objectives=n_objectives, restart=restart)
        elif t.state in (TrialState.RUNNING, TrialState.WAITING):
            history.add_pending(point, row, restart=restart)
    return history


def _encoded(
    trial: FrozenTrial,
    space: SpaceEncoding,
    search_space: Mapping[str, BaseDistribution],
    cache: dict[int, _Encoded | None],
) -> _Encoded | None:
    """A trial's point on ``space`` (value indices and bits), or None; read once for a
    finished trial (``cache``: by trial number)."""
    finished = trial.state.is_finished()
    if finished and trial.number in cache:
        return cache[trial.number]
    params = _params_of(trial, search_space)
    encoded = None
    if params is not None:
        point = space.indices_of(params)
        encoded = (point, space.encode_indices(point))
    if finished:
        cache[trial.number] = encoded
    return encoded


def _point_on(
    trial: FrozenTrial,
    space: SpaceEncoding,
    search_space: Mapping[str, BaseDistribution],
    cache: dict[int, _Encoded | None],
) -> dict[str, int] | None:
    encoded = _encoded(trial, space, search_space, cache)
    return None if encoded is None else encoded[0]


def _claims(
    study: Study,
    trial: FrozenTrial,
    space: SpaceEncoding,
    search_space: Mapping[str, BaseDistribution],
    cache: dict[int, _Encoded | None],
) -> list[Claim]:
    """The other trials' claims (:func:`qopt.search.claim_of`)."""
    return other_claims(study, trial, lambda t: _point_on(t, space, search_space, cache))


def _params_of(
    trial: FrozenTrial, search_space: Mapping[str, BaseDistribution]
) -> dict[str, Any] | None:
    """The trial's point on the search space (a running one's proposal), or None.

    Categorical values come back as choice indices, numbers as themselves: the form
    :func:`_to_parameter` encodes.
    """
    internal: dict[str, float] = {}
    if not trial.state.is_finished():
        proposal = read_proposal(trial.system_attrs, _PROPOSAL_KEY)
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
        if not _contains(distribution, value):
            return None
        params[name] = int(value) if isinstance(distribution, CategoricalDistribution) else value
    return params


def _contains(distribution: BaseDistribution, internal: float) -> bool:
    """Whether an internal value lies in ``distribution`` (a shared proposal may predate a
    change of the space)."""
    if isinstance(distribution, CategoricalDistribution):
        return float(internal).is_integer() and 0 <= internal < len(distribution.choices)
    assert isinstance(distribution, IntDistribution | FloatDistribution)
    if not distribution.low <= internal <= distribution.high:
        return False
    if distribution.step is None:
        return True
    steps = (internal - distribution.low) / distribution.step
    return abs(steps - round(steps)) < 1e-8


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
