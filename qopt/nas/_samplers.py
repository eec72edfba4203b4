"""Optuna parameters of an architecture, and the baseline samplers that work on architectures.

Imported lazily by :mod:`qopt.nas._runner`; imports Optuna at top level.
"""

from __future__ import annotations

import abc
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt import moves
from qopt.encoding import CategoricalParameter, IntParameter, Parameter, ParameterConstraint
from qopt.exceptions import SolverConfigurationError
from qopt.nas._spec import SearchSpace
from qopt.optuna_trials import other_claims, record_observed_quantile, set_system_attr
from qopt.search import (
    CLAIM_ATTR,
    Claim,
    EncodingOptions,
    History,
    ProposalEngine,
    claim_key,
    claim_proposal,
    proposal_attrs,
    read_proposal,
)
from qopt.search.claims import claim_point

__all__ = [
    "ARCH_ATTR",
    "QUBO_DEFAULTS",
    "QUBO_STARTUP",
    "SAMPLERS",
    "ArchitectureCodec",
    "QuboArchitectureSampler",
    "make_sampler",
]

#: User attribute holding the architecture dict (JSON) of every trial.
ARCH_ATTR = "architecture"
SAMPLERS = ("qubo", "random", "evolution", "local", "tpe", "nsga2")
#: QuboSampler options of architecture search, under any the caller gives. A global quadratic
#: surrogate ranks the best cells of NAS-Bench-201 poorly (fitted to the whole table it puts
#: the optimum 232nd), while its ranking of one cell's neighbours is informative: a Hamming
#: trust region of radius 3 around the incumbent (Casmopolitan) turns the surrogate into a
#: guide for local moves, and the "exp" target transform keeps the resolution near the best
#: values that those moves compare. The ball is a linear constraint of the QUBO (one-hot bits:
#: changes = V - sum_v x[v, incumbent_v]) that the configured solver minimizes the surrogate
#: under, beside the budget (QuboSampler's ``trust_region_method="solver"``;
#: ``"enumerate"`` finds the same minimum by enumeration). Chosen on seeds 100-129 of
#: benchmarks/nas/run.py (docs/benchmarks/nas.md): radius 3 over 2 once the solver minimizes over the
#: whole ball (its QUBO does not grow with the radius; NAS-Bench-201's radius-3 ball holds
#: 1 544 cells). ``trust_region=None, target_transform="rank"`` restores QuboSampler's own
#: global search.
QUBO_DEFAULTS: dict[str, Any] = {"trust_region": 3, "target_transform": "exp"}
#: Start design of the QUBO sampler in architecture search (at least what turns every bit on
#: once: 5 trials for NAS-Bench-201's five operations). Chosen with QUBO_DEFAULTS: with the
#: trust region the model's proposals are local, so random trials beyond the coverage design
#: only delay the climb.
QUBO_STARTUP = 5
#: TPE's start (Optuna's default).
TPE_STARTUP = 10


class ArchitectureCodec:
    """An architecture as Optuna parameters, and back.

    One parameter per choice, passed through unchanged: a categorical choice is a
    ``CategoricalDistribution`` of its values; an ordinal choice, or an int choice with evenly
    spaced values, is an ``IntDistribution`` over value positions (so samplers see the order).
    Budgets become :class:`qopt.encoding.ParameterConstraint` objects with per-value costs by
    position, which :mod:`qopt.encoding` turns into exact coefficients on the choice's bits.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> codec = ArchitectureCodec(nas_bench_201_space(max_mparams=0.6))
        >>> sorted(codec.distributions())[:2], len(codec.constraints())
        (['Op0', 'Op1'], 1)
    """

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._distributions: dict[str, BaseDistribution] = {}
        for name, c in space.choices.items():
            if c.kind == "ordinal" or (c.kind == "int" and _evenly_spaced(c.values)):
                self._distributions[name] = IntDistribution(0, len(c.values) - 1)
            else:
                self._distributions[name] = CategoricalDistribution(c.values)

    def distributions(self) -> dict[str, BaseDistribution]:
        """Parameter name to Optuna distribution."""
        return dict(self._distributions)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Suggest every parameter on an Optuna trial; the architecture."""
        params: dict[str, Any] = {}
        for name, dist in self._distributions.items():
            if isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high)
            else:
                assert isinstance(dist, CategoricalDistribution)
                params[name] = trial.suggest_categorical(name, dist.choices)
        arch = self.architecture_of(params)
        assert arch is not None
        return arch

    def architecture_of(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        """The architecture of a parameter dict (None when incomplete)."""
        arch: dict[str, Any] = {}
        for name, c in self.space.choices.items():
            if name not in params:
                return None
            if isinstance(self._distributions[name], IntDistribution):
                arch[name] = c.values[int(params[name])]
            else:
                arch[name] = params[name]
        return arch

    def params_of(self, architecture: Mapping[str, Any]) -> dict[str, Any]:
        """The parameter dict of an architecture (for ``study.enqueue_trial``)."""
        positions = self.space.positions(architecture)
        params: dict[str, Any] = {}
        for name, c in self.space.choices.items():
            if isinstance(self._distributions[name], IntDistribution):
                params[name] = positions[name]
            else:
                params[name] = c.values[positions[name]]
        return params

    def constraints(self) -> list[ParameterConstraint]:
        """The budgets as known linear constraints for :class:`QuboSampler`.

        Each budget's per-choice costs become per-value costs by position (exact). A quadratic
        (pair) budget enters as a linear *relaxation*: ``M[a, b] >= l[a] + m[b]`` with
        ``l[a] = min_b M[a, b] / 2`` and ``m[b] = min_a M[a, b] / 2``, so no architecture within
        the budget is cut off; the runner checks the exact cost and repairs the rest.
        Single-valued choices add their cost to the constant.
        """
        result = []
        for i, budget in enumerate(self.space.budgets):
            terms: dict[str, np.ndarray] = {}
            constant = budget.constant
            pieces = list(self.space.unary_costs(i).items())
            for first, second, m in self.space.pair_costs(i):
                pieces += [(first, 0.5 * m.min(axis=1)), (second, 0.5 * m.min(axis=0))]
            for name, costs in pieces:
                if len(costs) == 1:
                    constant += float(costs[0])
                else:
                    terms[name] = terms.get(name, np.zeros(len(costs))) + np.asarray(costs)
            kept = {n: [float(x) for x in v] for n, v in terms.items() if np.any(v != 0.0)}
            if kept:
                result.append(
                    ParameterConstraint(
                        kept,
                        ub=budget.max - constant,
                        label=f"budget {budget.name}" + ("" if budget.is_linear else " (relaxed)"),
                    )
                )
        return result


def _evenly_spaced(values: Sequence[Any]) -> bool:
    if len(values) < 2:
        return True
    steps = {b - a for a, b in itertools.pairwise(values)}
    return len(steps) == 1 and next(iter(steps)) > 0


def trial_architecture(trial: FrozenTrial) -> dict[str, Any] | None:
    """The architecture stored on a trial (user attribute), or None."""
    raw = trial.user_attrs.get(ARCH_ATTR)
    return None if raw is None else dict(json.loads(raw))


def _key(space: SearchSpace, arch: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(space.positions(arch).values())


class _ArchitectureSampler(BaseSampler):
    """Base of the baselines: propose a whole architecture within budget from the history."""

    def __init__(self, codec: ArchitectureCodec, *, seed: int | None = None) -> None:
        self._codec = codec
        self._space = codec.space
        self._rng = np.random.default_rng(seed)

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._codec.distributions()

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        history: list[tuple[dict[str, Any], float]] = []
        taken: set[tuple[int, ...]] = set()
        sign = 1.0 if study.directions[0] == StudyDirection.MINIMIZE else -1.0
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            arch = trial_architecture(t)
            if arch is None or t.number == trial.number:
                continue
            taken.add(_key(self._space, arch))
            if t.state == TrialState.COMPLETE and t.values is not None:
                history.append((arch, sign * float(t.values[0])))
        arch = self._propose(study, trial, history, taken)
        return self._codec.params_of(arch)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        # Every parameter is in the relative space; reached only for foreign parameters.
        if isinstance(param_distribution, CategoricalDistribution):
            return param_distribution.choices[
                int(self._rng.integers(len(param_distribution.choices)))
            ]
        assert isinstance(param_distribution, IntDistribution)
        return int(self._rng.integers(param_distribution.low, param_distribution.high + 1))

    def _random_untaken(self, taken: set[tuple[int, ...]]) -> dict[str, Any]:
        space = self._space
        return moves.random_untaken(
            lambda: space.random_architecture(self._rng), lambda a: _key(space, a), taken
        )

    @abc.abstractmethod
    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        history: list[tuple[dict[str, Any], float]],
        taken: set[tuple[int, ...]],
    ) -> dict[str, Any]:
        """The next architecture from the history (architecture, value to minimize)."""


class RandomArchitectureSampler(_ArchitectureSampler):
    """Uniform random architectures within budget (rejection sampling), no repeats.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> sampler = RandomArchitectureSampler(ArchitectureCodec(nas_bench_201_space()), seed=0)
        >>> type(sampler).__name__
        'RandomArchitectureSampler'
    """

    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        history: list[tuple[dict[str, Any], float]],
        taken: set[tuple[int, ...]],
    ) -> dict[str, Any]:
        return self._random_untaken(taken)


class RegularizedEvolutionSampler(_ArchitectureSampler):
    """Regularized (aging) evolution: Real, Aggarwal, Huang & Le, "Regularized Evolution for
    Image Classifier Architecture Search", AAAI 2019.

    The population is the ``population_size`` most recently completed architectures (the
    oldest dies each cycle); a parent is the best of ``sample_size`` drawn from it, and the
    child changes one choice at random (within budget, not yet evaluated). The state lives in
    the storage, so a resumed run continues the same evolution.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> codec = ArchitectureCodec(nas_bench_201_space())
        >>> RegularizedEvolutionSampler(codec, population_size=10, sample_size=3).population_size
        10
    """

    def __init__(
        self,
        codec: ArchitectureCodec,
        *,
        seed: int | None = None,
        population_size: int = 10,
        sample_size: int = 3,
    ) -> None:
        super().__init__(codec, seed=seed)
        if not 1 <= sample_size <= population_size:
            raise SolverConfigurationError(
                "The 'sample_size' parameter of RegularizedEvolutionSampler must be an int in "
                f"[1, population_size={population_size}]. Got {sample_size} instead."
            )
        self.population_size = population_size
        self.sample_size = sample_size

    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        history: list[tuple[dict[str, Any], float]],
        taken: set[tuple[int, ...]],
    ) -> dict[str, Any]:
        if len(history) < self.population_size:
            return self._random_untaken(taken)
        population = history[-self.population_size :]
        picks = self._rng.choice(len(population), size=self.sample_size, replace=False)
        parent = min((population[int(i)] for i in picks), key=lambda p: p[1])[0]
        for _ in range(50):
            children = self._space.neighbours(parent)
            if not children:
                break
            child = children[int(self._rng.integers(len(children)))]
            if _key(self._space, child) not in taken:
                return child
        return self._random_untaken(taken)


class LocalSearchSampler(_ArchitectureSampler):
    """Local search with random restarts: White, Nolen & Savani, "Exploring the Loss Landscape
    in Neural Architecture Search", UAI 2021.

    From the best architecture of the current climb, evaluate its unevaluated neighbours (one
    choice changed, within budget) in random order; a climb whose best has no unevaluated
    neighbour left restarts from a random architecture. The climb number is stored on each
    trial (``"qopt_nas:climb"``), so the search resumes where it stopped.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> LocalSearchSampler(ArchitectureCodec(nas_bench_201_space())).__class__.__name__
        'LocalSearchSampler'
    """

    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        history: list[tuple[dict[str, Any], float]],
        taken: set[tuple[int, ...]],
    ) -> dict[str, Any]:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        climbs = [int(t.system_attrs.get("qopt_nas:climb", 0)) for t in trials]
        climb = max(climbs, default=0)
        members = [
            t for t, c in zip(trials, climbs, strict=True) if c == climb and t.values is not None
        ]
        if members:
            sign = 1.0 if study.directions[0] == StudyDirection.MINIMIZE else -1.0
            best = min(members, key=lambda t: sign * float(t.values[0]))
            arch = trial_architecture(best)
            if arch is not None:
                options = [
                    n for n in self._space.neighbours(arch) if _key(self._space, n) not in taken
                ]
                if options:
                    set_system_attr(study, trial, "qopt_nas:climb", climb)
                    return options[int(self._rng.integers(len(options)))]
            climb += 1
        set_system_attr(study, trial, "qopt_nas:climb", climb)
        return self._random_untaken(taken)


#: Keyword options of :class:`QuboArchitectureSampler` beside the codec, seed, start and solver:
#: those of :class:`qopt.search.ProposalEngine` and of :class:`qopt.search.EncodingOptions`.
QUBO_OPTIONS = (
    "solver_options",
    "surrogate",
    "surrogate_options",
    "target_transform",
    "local_search",
    "trust_region",
    "trust_region_method",
    "trust_region_restart",
    "encoding",
    "encodings",
    "n_bins",
    "max_values",
    "max_bits",
)
#: Proposals are shared with other workers through this system attribute (chunked for RDB).
_PROPOSAL_KEY = "qopt:proposal"


class QuboArchitectureSampler(BaseSampler):
    """Architecture search with the search core (:class:`qopt.search.ProposalEngine`).

    The architecture space is encoded once, straight from the :class:`SearchSpace`: each
    choice with more than one value is a parameter over its value positions (an ordered
    choice an :class:`~qopt.encoding.IntParameter`, an unordered one a
    :class:`~qopt.encoding.CategoricalParameter`), and the budgets are the known constraints
    of :meth:`ArchitectureCodec.constraints`. Each trial's architecture (its parameters, or a
    running trial's shared proposal) becomes a point of the engine's
    :class:`~qopt.search.History`; the engine proposes the next one (start design, then the
    surrogate's QUBO, with the trust region of :data:`QUBO_DEFAULTS`), and its diagnostics go
    to the trial's ``qopt:*`` system attributes. Until a trial has completed there is no
    search space yet (the runner enqueues a known in-budget architecture instead).

    Args:
        codec: The architecture as Optuna parameters.
        solver: A qopt solver name or a :class:`dimod.Sampler`.
        seed: Seed for reproducible searches.
        n_startup_trials: Trials of the space-filling start.
        **options: Any of :data:`QUBO_OPTIONS`.

    Raises:
        SolverConfigurationError: An unknown or out-of-range option.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> sampler = QuboArchitectureSampler(ArchitectureCodec(nas_bench_201_space()), seed=0)
        >>> sampler.space.n_bits  # six operations, five choices each, one-hot
        30
    """

    def __init__(
        self,
        codec: ArchitectureCodec,
        *,
        solver: Any = "sa",
        seed: int | None = None,
        n_startup_trials: int = QUBO_STARTUP,
        **options: Any,
    ) -> None:
        owner = type(self).__name__
        unknown = sorted(set(options) - set(QUBO_OPTIONS))
        if unknown:
            raise SolverConfigurationError(
                f"{owner} got unknown option(s) {unknown}. Its options are: "
                f"{', '.join(QUBO_OPTIONS)}."
            )
        encoding = {
            k: options.pop(k) for k in list(options) if k in EncodingOptions.__annotations__
        }
        self._codec = codec
        self.engine = ProposalEngine(
            solver=solver, seed=seed, n_startup_trials=n_startup_trials, owner=owner, **options
        )
        self._independent_sampler = RandomSampler(seed=seed)
        self._distributions = {
            n: d for n, d in sorted(codec.distributions().items()) if not d.single()
        }
        parameters: dict[str, Parameter] = {
            n: IntParameter(0, d.high)
            if isinstance(d, IntDistribution)
            else CategoricalParameter(tuple(range(len(d.choices))))
            for n, d in self._distributions.items()
            if isinstance(d, IntDistribution | CategoricalDistribution)
        }
        self.space = EncodingOptions(owner=owner, **encoding).encode(
            parameters, codec.constraints()
        )
        # Finished trials never change: their points are read once.
        self._finished: dict[int, dict[str, int] | None] = {}

    # --------------------------------------------------------------- Optuna API
    def reseed_rng(self) -> None:
        self.engine.rng = np.random.default_rng()
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            return {}
        return dict(self._distributions)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        history = self._history(study, trial)
        signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]
        # Claimed in the storage before it is returned: workers sharing the study never
        # evaluate one architecture twice (qopt.search.claims).
        proposal = claim_proposal(
            self.engine,
            self.space,
            history,
            signs,
            owner=trial.number,
            write=lambda claim: set_system_attr(study, trial, CLAIM_ATTR, claim.to_attr()),
            others=lambda: self._claims(study, trial),
        )
        for key, chunk in proposal_attrs(proposal.indices, _PROPOSAL_KEY).items():
            set_system_attr(study, trial, key, chunk)
        for attr, value in proposal.info.items():
            set_system_attr(study, trial, f"qopt:{attr}", value)
        return {
            n: k if isinstance(d, IntDistribution) else d.choices[k]  # type: ignore[attr-defined]
            for (n, d), k in zip(
                self._distributions.items(), proposal.indices.values(), strict=True
            )
        }

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
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
        record_observed_quantile(study, trial, state, values)
        self._independent_sampler.after_trial(study, trial, state, values)

    def claim_queued(self, study: Study, trial: FrozenTrial) -> bool:
        """Claim a queued trial's architecture (its ``study.enqueue_trial`` parameters) as a
        proposal is claimed: False when another worker holds it or is about to, so that
        workers never evaluate one architecture twice however it reached them."""
        fixed = trial.system_attrs.get("fixed_params") or {}
        if set(fixed) < set(self._distributions):
            return True  # not a whole architecture: nothing to claim
        point = {n: int(d.to_internal_repr(fixed[n])) for n, d in self._distributions.items()}
        return claim_point(
            Claim(trial.number, claim_key(point), held=False),
            write=lambda claim: set_system_attr(study, trial, CLAIM_ATTR, claim.to_attr()),
            others=lambda: self._claims(study, trial),
        )

    # --------------------------------------------------------------- internals
    def _point(self, trial: FrozenTrial) -> dict[str, int] | None:
        """A trial's point (value positions): its parameters, or a running trial's proposal."""
        point: dict[str, int] = {}
        if not trial.state.is_finished():
            point.update(read_proposal(trial.system_attrs, _PROPOSAL_KEY))
        for name, value in trial.params.items():
            distribution = self._distributions.get(name)
            if distribution is None:
                continue
            if trial.distributions.get(name) != distribution:
                return None
            point[name] = int(distribution.to_internal_repr(value))
        if set(point) != set(self._distributions):
            return None
        return {n: point[n] for n in self._distributions}

    def _known_point(self, trial: FrozenTrial) -> dict[str, int] | None:
        """:meth:`_point`, read once for a finished trial."""
        if not trial.state.is_finished():
            return self._point(trial)
        if trial.number not in self._finished:
            self._finished[trial.number] = self._point(trial)
        return self._finished[trial.number]

    def _claims(self, study: Study, trial: FrozenTrial) -> list[Claim]:
        """The other trials' claims (:func:`qopt.search.claim_of`)."""
        return other_claims(study, trial, self._known_point)

    def _history(self, study: Study, trial: FrozenTrial) -> History:
        history = History()
        for t in study.get_trials(deepcopy=False):
            if t.number == trial.number:
                continue
            point = self._known_point(t)
            if point is None:
                continue
            row = self.space.encode_indices(point)
            forecast = t.system_attrs.get("qopt:predicted_quantile")
            outcome = t.system_attrs.get("qopt:observed_quantile")
            if forecast is not None and outcome is not None:
                history.add_forecast(forecast, outcome)
            restart = bool(t.system_attrs.get("qopt:trust_restart", False))
            if t.state == TrialState.COMPLETE and t.values is not None:
                violation = sum(max(0.0, v) for v in t.constraints.values())
                history.add_complete(point, row, t.values, violation=violation, restart=restart)
            elif t.state in (TrialState.FAIL, TrialState.PRUNED):
                history.add_failed(point, row, n_objectives=len(study.directions), restart=restart)
            elif t.state in (TrialState.RUNNING, TrialState.WAITING):
                history.add_pending(point, row, restart=restart)
        return history


def make_sampler(
    name: str,
    space: SearchSpace,
    *,
    seed: int | None,
    n_startup_trials: int | None = None,
    solver: str = "sa",
    options: Mapping[str, Any] | None = None,
) -> tuple[BaseSampler, ArchitectureCodec]:
    """The sampler called ``name`` (one of :data:`SAMPLERS`) and the codec it works through.

    ``options`` are further keyword options of :class:`QuboArchitectureSampler`
    (``surrogate``, ``target_transform``, ``trust_region``, ...), for ``name="qubo"`` only; they
    override :data:`QUBO_DEFAULTS`. ``n_startup_trials=None`` is :data:`QUBO_STARTUP` for qubo and
    10 for tpe.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> sampler, codec = make_sampler("qubo", nas_bench_201_space(), seed=0)
        >>> [c.label for c in codec.constraints()]  # per-op costs on the six categoricals
        ['budget params']
        >>> engine = sampler.engine
        >>> engine.trust_region, engine.target_transform, engine.n_startup_trials
        (3, 'exp', 5)
    """
    import optuna

    if name not in SAMPLERS:
        raise SolverConfigurationError(
            f"The 'sampler' parameter of run_search must be a str among {list(SAMPLERS)}. "
            f"Got {name!r} instead."
        )
    codec = ArchitectureCodec(space)
    if name == "qubo":
        return (
            QuboArchitectureSampler(
                codec,
                solver=solver,
                seed=seed,
                n_startup_trials=QUBO_STARTUP if n_startup_trials is None else n_startup_trials,
                **{**QUBO_DEFAULTS, **dict(options or {})},
            ),
            codec,
        )
    if name == "random":
        return RandomArchitectureSampler(codec, seed=seed), codec
    if name == "evolution":
        return RegularizedEvolutionSampler(codec, seed=seed), codec
    if name == "local":
        return LocalSearchSampler(codec, seed=seed), codec
    if name == "tpe":
        return (
            optuna.samplers.TPESampler(
                seed=seed,
                multivariate=True,
                n_startup_trials=TPE_STARTUP if n_startup_trials is None else n_startup_trials,
            ),
            codec,
        )
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=20), codec
