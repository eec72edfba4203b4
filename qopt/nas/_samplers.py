"""Optuna parameters of an architecture, and the baseline samplers that work on architectures.

Imported lazily by :mod:`qopt.nas._runner`; imports Optuna at top level.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt.encoding import ParameterConstraint
from qopt.exceptions import SolverConfigurationError
from qopt.nas._spec import SearchSpace

__all__ = [
    "ARCH_ATTR",
    "QUBO_DEFAULTS",
    "QUBO_STARTUP",
    "SAMPLERS",
    "ArchitectureCodec",
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
#: benchmarks/nas/run.py (docs/nas.md): radius 3 over 2 once the solver minimizes over the
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
        arch = self._space.random_architecture(self._rng)
        for _ in range(200):
            if _key(self._space, arch) not in taken:
                break
            arch = self._space.random_architecture(self._rng)
        return arch

    def _propose(
        self,
        study: Study,
        trial: FrozenTrial,
        history: list[tuple[dict[str, Any], float]],
        taken: set[tuple[int, ...]],
    ) -> dict[str, Any]:
        raise NotImplementedError


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
                    study._storage.set_trial_system_attr(trial._trial_id, "qopt_nas:climb", climb)
                    return options[int(self._rng.integers(len(options)))]
            climb += 1
        study._storage.set_trial_system_attr(trial._trial_id, "qopt_nas:climb", climb)
        return self._random_untaken(taken)


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

    ``options`` are further keyword options of :class:`QuboSampler` (``surrogate``,
    ``target_transform``, ``trust_region``, ...), for ``name="qubo"`` only; they override
    :data:`QUBO_DEFAULTS`. ``n_startup_trials=None`` is :data:`QUBO_STARTUP` for qubo and
    10 for tpe.

    Examples:
        >>> from qopt.nas import nas_bench_201_space
        >>> sampler, codec = make_sampler("qubo", nas_bench_201_space(), seed=0)
        >>> [c.label for c in codec.constraints()]  # per-op costs on the six categoricals
        ['budget params']
        >>> sampler._trust_region, sampler._target_transform, sampler._n_startup_trials
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
        from qopt.integrations.optuna import QuboSampler

        return (
            QuboSampler(
                solver=solver,
                seed=seed,
                n_startup_trials=QUBO_STARTUP if n_startup_trials is None else n_startup_trials,
                constraints=codec.constraints(),
                warn_independent_sampling=False,
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
