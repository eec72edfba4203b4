"""The architecture-search space: choices, hard budgets and objectives, from YAML/JSON or Python.

Framework-free: this module imports neither Optuna nor torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import numbers
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from qopt import moves
from qopt.exceptions import FileFormatError, InvalidProblemError
from qopt.nas._schema import (
    MEASURED_KINDS,
    BudgetSection,
    ChoiceSection,
    ObjectiveSection,
    PairSection,
    SpecDocument,
    TrainSection,
    check,
    validation_message,
)
from qopt.nas._tables import exact_cost

__all__ = [
    "Budget",
    "Choice",
    "Objective",
    "PairCost",
    "QoptBudgetWarning",
    "SearchSpace",
    "Training",
    "import_entry",
    "load_spec",
    "where_in_spec",
]

#: Above this many architectures the feasibility check samples instead of enumerating.
_ENUMERATE_LIMIT = 200_000


class QoptBudgetWarning(UserWarning):
    """A budget's cost has no exact low-order form: candidates are built and counted instead.

    Said once per budget, when its costs are derived. Silence it with
    ``warnings.filterwarnings("ignore", category=QoptBudgetWarning)``.
    """


def where_in_spec(source: Mapping[str, int] | None, key: str) -> str:
    """``"spec key 'budgets[0].max' (line 12)"``: where a spec error sits."""
    line = None if source is None else source.get(key)
    return f"spec key '{key}'" + (f" (line {line})" if line is not None else "")


def import_entry(space: SearchSpace, target: str, key: str) -> Callable[..., Any]:
    """The function named ``package.module:function``, also looked up in the spec's folder."""
    where = where_in_spec(space.source, key)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        base = space.base_dir
        if base is None or (
            not (base / (module_name.split(".")[0])).exists()
            and not (base / f"{module_name.split('.')[0]}.py").exists()
        ):
            raise InvalidProblemError(
                f"{where}: cannot import module '{module_name}' of entry point '{target}' "
                f"({error}). Check the name, and that the package is installed, on PYTHONPATH "
                "or next to the spec file."
            ) from error
        # As Python does for a script: the spec's folder is where its own modules live.
        sys.path.insert(0, str(base))
        module = importlib.import_module(module_name)
    function = getattr(module, attr, None)
    if not callable(function):
        raise InvalidProblemError(
            f"{where}: module '{module_name}' has no callable '{attr}'; define "
            f"'def {attr}(architecture: dict) -> ...' there."
        )
    return function


@dataclass(frozen=True)
class Choice:
    """One architectural decision: a layer's operation, a width, a depth.

    Args:
        name: Unique name; the key of the architecture dict.
        kind: ``"categorical"`` (unordered), ``"int"`` (integers ``low..high`` by ``step``) or
            ``"ordinal"`` (ordered values).
        values: The values, in order (for ``"int"``, use :meth:`integers`).

    Examples:
        >>> Choice("op", "categorical", ("conv3x3", "conv1x1", "skip")).values
        ('conv3x3', 'conv1x1', 'skip')
        >>> Choice.integers("width", 16, 64, step=16).values
        (16, 32, 48, 64)
    """

    name: str
    kind: str
    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        check(ChoiceSection, self.to_dict(), f"Choice {self.name!r}")

    @classmethod
    def integers(cls, name: str, low: int, high: int, step: int = 1) -> Choice:
        """An ``"int"`` choice over ``low, low + step, ..., high``.

        Examples:
            >>> Choice.integers("depth", 1, 3).values
            (1, 2, 3)
        """
        spec = {"name": name, "type": "int", "low": low, "high": high, "step": step}
        check(ChoiceSection, spec, f"Choice {name!r}")
        return cls(name, "int", tuple(range(int(low), int(high) + 1, int(step))))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written in a spec's ``choices``."""
        return {"name": self.name, "type": self.kind, "values": list(self.values)}

    @property
    def is_numeric(self) -> bool:
        """Whether every value is a number (products of values are then defined)."""
        return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in self.values)

    def index(self, value: Any) -> int:
        """Position of ``value`` among the values (exact match, type-aware)."""
        for k, v in enumerate(self.values):
            if type(v) is type(value) and v == value:
                return k
        for k, v in enumerate(self.values):
            if v == value:
                return k
        raise InvalidProblemError(
            f"{value!r} is not a value of choice '{self.name}'; its values are {list(self.values)}."
        )


@dataclass(frozen=True)
class PairCost:
    """A quadratic cost term between two choices, e.g. the weights between consecutive layers.

    Either ``coefficient * value_first * value_second`` (numeric choices) or a ``table`` of
    costs indexed by value positions, ``table[i][j]`` for the ``i``-th value of ``first`` and
    the ``j``-th of ``second``.

    Examples:
        >>> PairCost("w1", "w2", coefficient=1.0).coefficient
        1.0
    """

    first: str
    second: str
    coefficient: float | None = None
    table: tuple[tuple[float, ...], ...] | None = None

    def __post_init__(self) -> None:
        check(PairSection, self.to_dict(), f"PairCost between {self.first!r} and {self.second!r}")
        if self.table is not None:
            object.__setattr__(
                self, "table", tuple(tuple(float(x) for x in row) for row in self.table)
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written in a budget's ``pairs``."""
        entry: dict[str, Any] = {"between": [self.first, self.second]}
        if self.coefficient is not None:
            entry["coefficient"] = self.coefficient
        if self.table is not None:
            entry["table"] = [list(r) for r in self.table]
        return entry

    def matrix(self, first: Choice, second: Choice) -> np.ndarray:
        """The cost of every pair of value positions, shape ``(len(first), len(second))``."""
        if self.coefficient is not None:
            if not (first.is_numeric and second.is_numeric):
                raise InvalidProblemError(
                    f"The pair cost between '{first.name}' and '{second.name}' uses a "
                    "coefficient, which needs numeric values; give a 'table' instead."
                )
            a = np.array(first.values, dtype=float)
            b = np.array(second.values, dtype=float)
            return float(self.coefficient) * np.outer(a, b)
        m = np.array(self.table, dtype=float)
        if m.shape != (len(first.values), len(second.values)):
            raise InvalidProblemError(
                f"The pair cost table between '{first.name}' and '{second.name}' has shape "
                f"{m.shape}; it needs ({len(first.values)}, {len(second.values)})."
            )
        return m


@dataclass(frozen=True)
class Budget:
    """A hard constraint ``cost(architecture) <= max`` on params, FLOPs, latency or a user cost.

    The cost is ``constant + sum(costs[choice][value]) + sum(pair costs)``: linear (per-choice
    costs only) or quadratic (pair costs, e.g. parameters of consecutive widths). With
    ``exact``, the budget holds on an exact cost that no low-order polynomial gives (a table's
    column, as NAS-Bench-Graph's parameters and latency): the polynomial is then a *lower
    bound* on it, which the QUBO uses as a relaxation (it never cuts off an architecture
    within budget), and every check before an evaluation uses the exact cost.

    A ``params`` or ``flops`` budget of a space with a model builder may give only ``max``:
    the space derives its costs from probe builds (``1 + sum(n_c - 1) + pairs`` builds plus
    checks, on PyTorch's meta device) and marks the budget ``probed``. Hand-written costs of
    such a budget are checked against the same probe builds.

    Args:
        name: Label (e.g. ``"params"``).
        max: The bound; an architecture with a larger cost is never evaluated.
        kind: ``"params"``, ``"flops"``, ``"latency"`` or ``"cost"`` (informational).
        costs: Per-choice costs: choice name to ``{value: cost}`` (missing values cost 0).
        pairs: Quadratic terms (:class:`PairCost`).
        constant: Cost of the fixed part of the network.
        exact: Where the exact cost comes from, ``"benchmark:nbg-<dataset>:params"`` or
            ``"benchmark:nbg-<dataset>:latency"`` (see
            :func:`qopt.nas.nas_bench_graph_space`), or ``"builder"`` (build and count each
            architecture); ``None``: the polynomial is exact.
        probed: The costs were derived from probe builds of the space's builder; set by the
            space, so a saved spec is not probed again.

    Examples:
        >>> b = Budget("params", 100, costs={"op": {"conv": 80, "skip": 0}}, constant=10)
        >>> b.cost({"op": "conv"}), b.is_linear
        (90.0, True)
    """

    name: str
    max: float
    kind: str = "cost"
    costs: Mapping[str, Mapping[Any, float]] = field(default_factory=dict)
    pairs: tuple[PairCost, ...] = ()
    constant: float = 0.0
    exact: str | None = None
    probed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", tuple(self.pairs))
        checked = check(BudgetSection, self.to_dict(), f"Budget {self.name!r}")
        object.__setattr__(self, "max", checked.max)
        object.__setattr__(self, "constant", checked.constant)
        object.__setattr__(self, "costs", {c: dict(t) for c, t in checked.costs.items()})

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written in a spec's ``budgets`` (costs as ``[value, cost]`` pairs,
        which keep non-string values through JSON)."""
        entry: dict[str, Any] = {"name": self.name, "kind": self.kind, "max": self.max}
        if self.costs:
            entry["costs"] = (
                {
                    c: [[v, x] for v, x in t.items()] if isinstance(t, Mapping) else t
                    for c, t in self.costs.items()
                }
                if isinstance(self.costs, Mapping)
                else self.costs
            )
        if self.constant:
            entry["constant"] = self.constant
        if self.exact is not None:
            entry["exact"] = self.exact
        if self.pairs:
            entry["pairs"] = [p.to_dict() for p in self.pairs]
        if self.probed:
            entry["probed"] = True
        return entry

    @property
    def is_measured(self) -> bool:
        """A ``params`` or ``flops`` budget: its cost can be counted on a built model."""
        return self.kind in MEASURED_KINDS

    @property
    def has_costs(self) -> bool:
        """Whether any cost is written (else a builder derives them)."""
        return bool(self.costs or self.pairs or self.constant)

    @property
    def is_linear(self) -> bool:
        """True when the budget enters the QUBO exactly: no pair terms, no ``exact`` cost."""
        return not self.pairs and self.exact is None

    @property
    def choice_names(self) -> list[str]:
        """Choices the cost depends on."""
        names = list(self.costs)
        for p in self.pairs:
            names += [p.first, p.second]
        return list(dict.fromkeys(names))

    def cost(self, architecture: Mapping[str, Any]) -> float:
        """The polynomial cost of an architecture dict (choice name to value).

        With ``exact`` set this is the lower bound; :meth:`SearchSpace.cost` gives the exact cost.
        """
        total = self.constant
        for name, table in self.costs.items():
            total += _lookup(table, architecture[name])
        for p in self.pairs:
            a, b = architecture[p.first], architecture[p.second]
            if p.coefficient is not None:
                total += p.coefficient * float(a) * float(b)
            else:  # a table is indexed by value positions, which only the space knows
                raise InvalidProblemError(
                    f"Budget '{self.name}' has a pair table; evaluate it through "
                    "SearchSpace.cost(), which knows the value positions."
                )
        return float(total)


def _lookup(table: Mapping[Any, float], value: Any) -> float:
    if value in table:
        return table[value]
    # YAML/JSON keys are strings: '32' stands for 32.
    return table.get(str(value), 0.0)


@dataclass(frozen=True)
class Objective:
    """A metric the search optimizes, with its direction.

    Examples:
        >>> Objective("val_acc", "maximize").direction
        'maximize'
    """

    name: str
    direction: str = "minimize"

    def __post_init__(self) -> None:
        spec = {"name": self.name, "direction": self.direction}
        check(ObjectiveSection, spec, f"Objective {self.name!r}")


@dataclass(frozen=True)
class Training:
    """How a Lightning train-and-evaluate objective trains each architecture.

    With a ``train`` section, the spec's ``evaluate`` entry point builds a
    ``LightningModule`` from the architecture dict (instead of returning metrics); qopt
    trains it with a Lightning ``Trainer`` under a per-trial budget, reports ``monitor`` to
    the Optuna trial after each validation so the pruner can stop bad architectures, and
    measures the built model's parameters and MACs.

    Args:
        max_epochs: Epochs per trial.
        max_time_s: Wall-clock seconds per trial (``None``: no limit).
        monitor: The metric the module logs (``self.log("val_acc", ...)``), reported each epoch.
        pruner: ``"median"``, ``"successive-halving"`` or ``"none"``.
        pruner_options: Keyword options of the Optuna pruner (``n_startup_trials``, ...).
        data: Optional ``"package.module:function"`` returning a ``LightningDataModule``
            (else the module's own ``train_dataloader``/``val_dataloader`` are used).
        accelerator: Lightning accelerator (``"cpu"``, ``"gpu"``, ``"auto"``).
        save_weights: Keep each completed trial's weights in ``RUN_DIR/weights/``.

    Examples:
        >>> Training(max_epochs=3, monitor="val_acc").pruner
        'median'
    """

    max_epochs: int = 5
    max_time_s: float | None = None
    monitor: str = "val_acc"
    pruner: str = "median"
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    data: str | None = None
    accelerator: str = "cpu"
    save_weights: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "pruner_options", dict(self.pruner_options))
        check(TrainSection, self.to_dict(), "Training")

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as written in a spec's ``train`` section."""
        return {
            "max_epochs": self.max_epochs,
            "max_time_s": self.max_time_s,
            "monitor": self.monitor,
            "pruner": self.pruner,
            "pruner_options": dict(self.pruner_options),
            "data": self.data,
            "accelerator": self.accelerator,
            "save_weights": self.save_weights,
        }


class SearchSpace:
    """Choices, hard budgets, objectives and how to evaluate an architecture.

    The same object comes from a YAML/JSON file (:func:`load_spec`) or from Python.

    Args:
        choices: The decisions, in order.
        budgets: Hard constraints; an architecture over any of them is never evaluated.
        objectives: One or more metrics with directions.
        evaluate: ``"package.module:build"`` (a callable taking the architecture dict and
            returning a float or a dict of metrics) or ``"benchmark:nb201-cifar10"``.
        train: How to train the module ``evaluate`` builds (then ``evaluate`` is the builder).
        build: ``"package.module:function"`` returning the torch model of an architecture
            dict, on which ``params``/``flops`` budgets are measured (default: ``evaluate``
            when there is a ``train`` section).
        name: Study name.
        source: Spec key path to line number, for error messages (filled by :func:`load_spec`).
        base_dir: The spec file's folder, where entry points are also looked up.
        check_costs: Check hand-written ``params``/``flops`` costs against probe builds of
            the builder (``from_dict``, which reads saved specs, does not).

    Attributes:
        probes: Per budget derived from or checked against the builder, its fit
            (:class:`qopt.model_analysis.choice_cost.ChoiceCost`: ``builds``, ``exact``, ...).

    Raises:
        InvalidProblemError: Duplicate or unknown choice names, an empty objective list, a
            budget no architecture meets, hand-written costs the builder contradicts.
        BuilderError: The builder fails on a probe architecture, or builds a model whose
            cost a budget cannot measure.

    Examples:
        >>> space = SearchSpace(
        ...     [Choice.integers("w1", 8, 32, step=8), Choice.integers("w2", 8, 32, step=8)],
        ...     budgets=[Budget("params", 600, pairs=(PairCost("w1", "w2", coefficient=1.0),))],
        ...     objectives=[Objective("loss")],
        ... )
        >>> space.size, space.within_budget({"w1": 32, "w2": 16}), space.within_budget({"w1": 32, "w2": 32})
        (16, True, False)
    """

    def __init__(
        self,
        choices: Sequence[Choice],
        *,
        budgets: Sequence[Budget] = (),
        objectives: Sequence[Objective] = (Objective("objective"),),
        evaluate: str | None = None,
        train: Training | None = None,
        build: str | None = None,
        name: str = "qopt-nas",
        source: Mapping[str, int] | None = None,
        base_dir: str | Path | None = None,
        check_costs: bool = True,
    ) -> None:
        self.source = dict(source or {})
        #: Directory of the spec file (set by :func:`load_spec`): entry points are looked up
        #: there too, as Python does for a script's directory.
        self.base_dir: Path | None = None if base_dir is None else Path(base_dir)
        self.choices: dict[str, Choice] = {}
        for i, c in enumerate(choices):
            if not isinstance(c, Choice):
                raise InvalidProblemError(
                    f"{where_in_spec(self.source, f'choices[{i}]')} is not a Choice."
                )
            if c.name in self.choices:
                raise InvalidProblemError(
                    f"{where_in_spec(self.source, f'choices[{i}].name')}: choice '{c.name}' is defined "
                    "twice; give each choice a unique name."
                )
            self.choices[c.name] = c
        #: The number of values of each choice, by name (the moves of :mod:`qopt.moves`).
        self.sizes = {n: len(c.values) for n, c in self.choices.items()}
        if not self.choices:
            raise InvalidProblemError(
                f"{where_in_spec(self.source, 'choices')}: the space has no choices."
            )
        self.budgets = tuple(budgets)
        self.objectives = tuple(objectives)
        if not self.objectives:
            raise InvalidProblemError(
                f"{where_in_spec(self.source, 'objectives')}: give at least one objective."
            )
        if len({o.name for o in self.objectives}) != len(self.objectives):
            raise InvalidProblemError(
                f"{where_in_spec(self.source, 'objectives')}: objective names repeat."
            )
        self.evaluate = evaluate
        self.train = train
        self.build = build
        self.name = name
        self.probes: dict[str, Any] = {}
        self._builder_costs: dict[int, Any] = {}
        self.budgets = tuple(
            self._derive(i, b) if b.is_measured and not b.has_costs else b
            for i, b in enumerate(self.budgets)
        )
        self._pair_matrices: dict[tuple[int, int], np.ndarray] = {}
        for b_index, budget in enumerate(self.budgets):
            for choice in budget.choice_names:
                if choice not in self.choices:
                    raise InvalidProblemError(
                        f"{where_in_spec(self.source, f'budgets[{b_index}]')}: budget '{budget.name}' "
                        f"names choice '{choice}', which is not defined; the choices are "
                        f"{list(self.choices)}."
                    )
            for name, table in budget.costs.items():
                known = {repr(v) for v in self.choices[name].values} | {
                    repr(str(v)) for v in self.choices[name].values
                }
                for value in table:
                    if repr(value) not in known:
                        raise InvalidProblemError(
                            f"{where_in_spec(self.source, f'budgets[{b_index}].costs.{name}')}: "
                            f"{value!r} is not a value of choice '{name}' "
                            f"({list(self.choices[name].values)})."
                        )
            for p_index, pair in enumerate(budget.pairs):
                try:
                    m = pair.matrix(self.choices[pair.first], self.choices[pair.second])
                except InvalidProblemError as error:
                    raise InvalidProblemError(
                        f"{where_in_spec(self.source, f'budgets[{b_index}].pairs[{p_index}]')}: {error}"
                    ) from error
                self._pair_matrices[(b_index, p_index)] = m
        #: Exact costs (budget index -> function of value positions); the polynomial of such a
        #: budget is a lower bound on it.
        if check_costs:
            for b_index, budget in enumerate(self.budgets):
                self._check_costs(b_index, budget)
        self._exact: dict[int, Any] = {}
        for b_index, budget in enumerate(self.budgets):
            if budget.exact == "builder":
                self._exact[b_index] = self._measured(b_index)
            elif budget.exact is not None:
                try:
                    self._exact[b_index] = exact_cost(
                        budget.exact, {n: c.values for n, c in self.choices.items()}
                    )
                except InvalidProblemError as error:
                    raise InvalidProblemError(
                        f"{where_in_spec(self.source, f'budgets[{b_index}].exact')}: {error}"
                    ) from error
        self._anchor: dict[str, Any] | None = None
        if not any(b.exact == "builder" for b in self.budgets) or self._builder_costs:
            self._check_budgets_feasible()
        # else (a saved spec whose budget is measured on the builder): checked on first use,
        # once the caller has set base_dir, where the builder's module may live

    # ------------------------------------------------------------------ the model builder
    @property
    def builder(self) -> str | None:
        """The entry point that builds an architecture's torch model: ``build``, or
        ``evaluate`` when a ``train`` section makes it return a ``LightningModule``."""
        if self.build is not None:
            return self.build
        return self.evaluate if self.train is not None else None

    def _builder_cost(self, b_index: int) -> Any:
        """The measured cost of budget ``b_index`` on the builder (imports torch), cached."""
        if b_index not in self._builder_costs:
            from qopt.nas._builder import BuilderCost

            budget = self.budgets[b_index]
            where = where_in_spec(self.source, f"budgets[{b_index}]")
            entry = self.builder
            if entry is None:
                raise InvalidProblemError(
                    f"{where}: budget '{budget.name}' gives only 'max', and its costs are "
                    "measured on the model builder, which this spec lacks; add 'build: "
                    "package.module:function' (returns the torch model of an architecture "
                    "dict), or a 'train' section (then 'evaluate' builds the model), or write "
                    "the budget's 'costs'."
                )
            key = "build" if self.build is not None else "evaluate"
            self._builder_costs[b_index] = BuilderCost(
                import_entry(self, entry, key),
                {n: c.values for n, c in self.choices.items()},
                budget.kind,
                label=f"{where}: budget '{budget.name}'",
            )
        return self._builder_costs[b_index]

    def _derive(self, b_index: int, budget: Budget) -> Budget:
        """``budget`` with its costs fitted from probe builds of the builder."""
        from qopt.nas._builder import probe

        fit = probe(self._builder_cost(b_index), self.sizes, name=budget.name)
        self.probes[budget.name] = fit
        if not fit.exact:
            warnings.warn(
                f"Budget '{budget.name}': the builder's {budget.kind} are not a sum of "
                f"single-choice and pair costs (off by up to {fit.worst_error:g} over "
                f"{fit.builds} probe builds). Each candidate is built and counted to check "
                "the budget, and the QUBO holds the fit as a relaxation, so some proposals "
                "are rejected and repaired.",
                QoptBudgetWarning,
                stacklevel=4,
            )
        costs = {
            n: {v: float(u[k]) for k, v in enumerate(self.choices[n].values)}
            for n, u in fit.unary.items()
        }
        pairs = tuple(
            PairCost(a, b, table=tuple(tuple(float(x) for x in row) for row in m))
            for (a, b), m in fit.pairs.items()
        )
        return dataclasses.replace(
            budget,
            costs=costs,
            pairs=pairs,
            constant=fit.constant,
            exact=None if fit.exact else "builder",
            probed=True,
        )

    def _check_costs(self, b_index: int, budget: Budget) -> None:
        """Check hand-written costs against probe builds (when the space has a builder and the
        budget is one it measures)."""
        if budget.probed or not budget.is_measured or budget.exact or self.builder is None:
            return
        from qopt.nas._builder import describe_disagreement, probe

        cost = self._builder_cost(b_index)
        self.probes[budget.name] = probe(cost, self.sizes, name=budget.name)
        problem = describe_disagreement(
            cost, lambda p: self._polynomial_at(b_index, p), list(self.choices)
        )
        if problem is not None:
            raise InvalidProblemError(
                f"{where_in_spec(self.source, f'budgets[{b_index}]')}: the costs of budget "
                f"'{budget.name}' disagree with the models the builder '{self.builder}' "
                f"builds: {problem}. Leave out 'costs', 'pairs' and 'constant' to have them "
                "derived from the builder, or correct them."
            )

    def _measured(self, b_index: int) -> Callable[[Mapping[str, int]], float]:
        """The exact cost of a ``exact: builder`` budget: build and count (on first use)."""

        def cost(positions: Mapping[str, int]) -> float:
            return float(self._builder_cost(b_index)(positions))

        return cost

    # ------------------------------------------------------------------ costs
    @property
    def size(self) -> int:
        """Number of architectures, budgets ignored."""
        return math.prod(len(c.values) for c in self.choices.values())

    def unary_costs(self, budget_index: int) -> dict[str, np.ndarray]:
        """Per-choice cost of each value position for budget ``budget_index`` (pairs excluded)."""
        budget = self.budgets[budget_index]
        return {
            name: np.array([_lookup(table, v) for v in self.choices[name].values])
            for name, table in budget.costs.items()
        }

    def pair_costs(self, budget_index: int) -> list[tuple[str, str, np.ndarray]]:
        """The quadratic terms of budget ``budget_index`` as cost matrices over value positions."""
        budget = self.budgets[budget_index]
        return [
            (p.first, p.second, self._pair_matrices[(budget_index, k)])
            for k, p in enumerate(budget.pairs)
        ]

    def cost(self, architecture: Mapping[str, Any], budget: int | str = 0) -> float:
        """The cost of ``architecture`` under a budget (by index or name).

        Examples:
            >>> space = SearchSpace([Choice("op", "categorical", ("a", "b"))],
            ...     budgets=[Budget("flops", 5, costs={"op": {"a": 3, "b": 7}})])
            >>> space.cost({"op": "b"}, "flops")
            7.0
        """
        b_index = self._budget_index(budget)
        positions = self.positions(architecture)
        return self._cost_at(b_index, positions)

    def _cost_at(self, b_index: int, positions: Mapping[str, int]) -> float:
        if b_index in self._exact:
            return float(self._exact[b_index](positions))
        return self._polynomial_at(b_index, positions)

    def _polynomial_at(self, b_index: int, positions: Mapping[str, int]) -> float:
        total = self.budgets[b_index].constant
        for name, costs in self.unary_costs(b_index).items():
            total += costs[positions[name]]
        for first, second, m in self.pair_costs(b_index):
            total += m[positions[first], positions[second]]
        return float(total)

    def costs(self, architecture: Mapping[str, Any]) -> dict[str, float]:
        """Every budget's cost of ``architecture``, by budget name."""
        return {b.name: self.cost(architecture, i) for i, b in enumerate(self.budgets)}

    def within_budget(self, architecture: Mapping[str, Any]) -> bool:
        """Whether every budget holds (1e-9 relative slack for float noise)."""
        return self.violation(architecture) <= 0.0

    def violation(self, architecture: Mapping[str, Any]) -> float:
        """Sum over budgets of how far the cost exceeds ``max``, relative to ``max``."""
        positions = self.positions(architecture)
        return self._violation_at(positions)

    def _violation_at(self, positions: Mapping[str, int]) -> float:
        total = 0.0
        for i, b in enumerate(self.budgets):
            excess = self._cost_at(i, positions) - b.max
            if excess > 1e-9 * max(1.0, abs(b.max)):
                total += excess / max(1e-12, abs(b.max))
        return total

    def _budget_index(self, budget: int | str) -> int:
        if isinstance(budget, int):
            if not 0 <= budget < len(self.budgets):
                raise InvalidProblemError(
                    f"There is no budget {budget}; {len(self.budgets)} exist."
                )
            return budget
        for i, b in enumerate(self.budgets):
            if b.name == budget:
                return i
        raise InvalidProblemError(
            f"There is no budget '{budget}'; the budgets are {[b.name for b in self.budgets]}."
        )

    # ------------------------------------------------------------------ architectures
    def positions(self, architecture: Mapping[str, Any]) -> dict[str, int]:
        """Value position of each choice in an architecture dict."""
        missing = [n for n in self.choices if n not in architecture]
        if missing:
            raise InvalidProblemError(f"The architecture lacks choice(s) {missing}.")
        return {n: c.index(architecture[n]) for n, c in self.choices.items()}

    def architecture(self, positions: Mapping[str, int]) -> dict[str, Any]:
        """The architecture dict of value positions."""
        return {n: c.values[int(positions[n])] for n, c in self.choices.items()}

    def random_architecture(self, rng: np.random.Generator, *, tries: int = 1000) -> dict[str, Any]:
        """A uniformly random architecture within budget (rejection, then repair).

        Examples:
            >>> import numpy as np
            >>> space = SearchSpace([Choice.integers("w", 1, 9)],
            ...     budgets=[Budget("c", 3, costs={"w": {v: v for v in range(1, 10)}})])
            >>> space.random_architecture(np.random.default_rng(0))["w"] <= 3
            True
        """
        for _ in range(tries):
            positions = moves.random_point(self.sizes, rng)
            if self._violation_at(positions) <= 0.0:
                return self.architecture(positions)
        return self.repair(self.architecture(positions), rng=rng)

    def neighbours(self, architecture: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Architectures one change away (any other value of one choice), within budget."""
        return [
            self.architecture(moved)
            for moved in moves.neighbours(self.positions(architecture), self.sizes)
            if self._violation_at(moved) <= 0.0
        ]

    def repair(
        self, architecture: Mapping[str, Any], *, rng: np.random.Generator | None = None
    ) -> dict[str, Any]:
        """The architecture made to fit every budget by greedy single-choice changes.

        Each step takes the change that most reduces the total relative excess; if greedy
        descent sticks, the known feasible architecture found at construction is returned.
        """
        positions = moves.descend(
            self.positions(architecture),
            self.sizes,
            self._violation_at,
            tie=None if rng is None else lambda *_: float(rng.random()),
        )
        if self._violation_at(positions) > 0.0:
            return self.anchor
        return self.architecture(positions)

    def iter_architectures(self) -> Iterator[dict[str, Any]]:
        """Every architecture, budgets ignored (use on small spaces)."""
        names = list(self.choices)
        for combo in itertools.product(*(self.choices[n].values for n in names)):
            yield dict(zip(names, combo, strict=True))

    def _check_budgets_feasible(self) -> None:
        self._anchor = {}
        if not self.budgets:
            self._anchor = self.architecture({n: 0 for n in self.choices})
            return
        # A lower bound per budget: each term at its minimum. Over max => provably impossible.
        for i, b in enumerate(self.budgets):
            low = b.constant + sum(float(c.min()) for c in self.unary_costs(i).values())
            low += sum(float(m.min()) for _, _, m in self.pair_costs(i))
            if low > b.max + 1e-9 * max(1.0, abs(b.max)):
                raise InvalidProblemError(
                    f"{where_in_spec(self.source, f'budgets[{i}].max')}: budget '{b.name}' cannot be "
                    f"met: the cheapest architecture costs at least {low:g} > max={b.max:g}. "
                    "Raise the max or add cheaper values to the choices."
                )
        rng = np.random.default_rng(0)
        cheapest = {
            n: int(
                np.argmin(
                    [
                        sum(
                            float(self.unary_costs(i).get(n, np.zeros(len(c.values)))[k])
                            / max(1e-12, abs(b.max))
                            for i, b in enumerate(self.budgets)
                        )
                        for k in range(len(c.values))
                    ]
                )
            )
            for n, c in self.choices.items()
        }
        starts = [cheapest] + [moves.random_point(self.sizes, rng) for _ in range(20)]
        found = moves.first_feasible(starts, self.sizes, self._violation_at)
        if found is not None:
            self._anchor = self.architecture(found)
            return
        if self.size <= _ENUMERATE_LIMIT:
            for arch in self.iter_architectures():
                if self._violation_at(self.positions(arch)) <= 0.0:
                    self._anchor = arch
                    return
        names = ", ".join(f"'{b.name}'" for b in self.budgets)
        raise InvalidProblemError(
            f"{where_in_spec(self.source, 'budgets')}: no architecture meets every budget ({names}) "
            "together. Raise the max values or add cheaper choices."
        )

    @property
    def anchor(self) -> dict[str, Any]:
        """A known architecture within every budget."""
        if self._anchor is None:
            self._check_budgets_feasible()
        assert self._anchor is not None
        return dict(self._anchor)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data (what :func:`load_spec` reads back).

        Examples:
            >>> space = SearchSpace([Choice("op", "categorical", ("a", "b"))])
            >>> SearchSpace.from_dict(space.to_dict()).choices["op"].values
            ('a', 'b')
        """
        return {
            "name": self.name,
            "choices": [c.to_dict() for c in self.choices.values()],
            "budgets": [b.to_dict() for b in self.budgets],
            "objectives": [{"name": o.name, "direction": o.direction} for o in self.objectives],
            **({"evaluate": self.evaluate} if self.evaluate else {}),
            **({"build": self.build} if self.build else {}),
            **({"train": self.train.to_dict()} if self.train is not None else {}),
        }

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        source: Mapping[str, int] | None = None,
        base_dir: str | Path | None = None,
        check_costs: bool = False,
    ) -> SearchSpace:
        """Build from plain data (a saved spec, or the parsed YAML/JSON; see :func:`load_spec`).

        Budgets given only a ``max`` are derived; hand-written costs are checked against the
        builder only with ``check_costs`` (:func:`load_spec` checks them).
        """
        return _from_dict(data, source or {}, base_dir, check_costs=check_costs)

    def __repr__(self) -> str:
        return (
            f"SearchSpace(name={self.name!r}, choices={list(self.choices)}, "
            f"budgets={[b.name for b in self.budgets]}, "
            f"objectives={[o.name for o in self.objectives]})"
        )


# ---------------------------------------------------------------------- parsing
def _from_dict(
    data: Any,
    source: Mapping[str, int],
    base_dir: str | Path | None = None,
    *,
    check_costs: bool = False,
) -> SearchSpace:
    """A space from the parsed spec: the schema first (an error names the key and its line),
    then the object model (budgets that name unknown choices or cannot be met, ...)."""
    try:
        document = SpecDocument.model_validate(data)
    except ValidationError as error:
        key, message = validation_message(SpecDocument, error.errors()[0])
        if not isinstance(data, Mapping):
            message = f"A spec must be a mapping with 'choices' at its top level. Got {data!r}"
        raise InvalidProblemError(
            f"{where_in_spec(source, key)}: {message}." if key else f"{message}."
        ) from None
    choices = [
        Choice(c.name, c.type, tuple(c.values))
        if c.values is not None
        else Choice.integers(c.name, c.low or 0, c.high or 0, c.step)
        for c in document.choices
    ]
    budgets = [
        Budget(
            b.name,
            b.max,
            kind=b.kind,
            costs=b.costs,
            pairs=tuple(
                PairCost(
                    p.between[0],
                    p.between[1],
                    coefficient=p.coefficient,
                    table=None if p.table is None else tuple(tuple(r) for r in p.table),
                )
                for p in b.pairs
            ),
            constant=b.constant,
            exact=b.exact,
            probed=b.probed,
        )
        for b in document.budgets
    ]
    return SearchSpace(
        choices,
        budgets=budgets,
        objectives=[Objective(o.name, o.direction) for o in document.objectives],
        evaluate=document.evaluate,
        train=None if document.train is None else Training(**document.train.model_dump()),
        build=document.build,
        name=document.name,
        source=source,
        base_dir=base_dir,
        check_costs=check_costs,
    )


def _lines(node: Any, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Spec key path (``budgets[0].max``) to 1-based line, from a composed YAML node tree."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{path}.{key_node.value}" if path else str(key_node.value)
            out[key] = key_node.start_mark.line + 1
            _lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = f"{path}[{i}]"
            out[key] = item.start_mark.line + 1
            _lines(item, key, out)
    return out


#: Values (keys, items, scalars) a spec file may stand for, its aliases expanded.
MAX_SPEC_VALUES = 1_000_000


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values ``node`` stands for with its aliases expanded, counted once per node (a YAML
    alias bomb is a few lines of text standing for billions of values)."""
    if id(node) not in sizes:
        sizes[id(node)] = 1  # a cycle counts once
        items = node.value if isinstance(node.value, list) else []
        children = [c for item in items for c in (item if isinstance(item, tuple) else (item,))]
        sizes[id(node)] = 1 + sum(_expanded_size(c, sizes) for c in children)
    return sizes[id(node)]


def load_spec(path: str | Path) -> SearchSpace:
    """Read a search-space spec from a YAML or JSON file.

    Errors name the spec key and its line, and say what to write instead.

    Args:
        path: The spec file (``.yaml``, ``.yml`` or ``.json``).

    Raises:
        FileFormatError: The file is not valid YAML/JSON.
        InvalidProblemError: The spec is malformed (unknown choice type, empty values,
            impossible budget, bad entry point).

    Examples:
        >>> import tempfile, pathlib
        >>> text = '''
        ... name: tiny
        ... choices:
        ...   - {name: op, type: categorical, values: [conv, skip]}
        ...   - {name: width, type: int, low: 8, high: 32, step: 8}
        ... budgets:
        ...   - {name: params, max: 40, costs: {op: {conv: 9, skip: 0}, width: {32: 40}}}
        ... objectives: [{name: loss, direction: minimize}]
        ... '''
        >>> spec = pathlib.Path(tempfile.mkdtemp()) / "space.yaml"
        >>> _ = spec.write_text(text)
        >>> space = load_spec(spec)
        >>> space.choices["width"].values, space.within_budget({"op": "conv", "width": 32})
        ((8, 16, 24, 32), False)
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FileFormatError(f"Cannot read spec file '{path}': {error}.") from error
    except UnicodeDecodeError as error:
        raise FileFormatError(
            f"Spec file '{path}' is not UTF-8 text ({error.reason} at byte {error.start}); "
            "a spec is a YAML or JSON text file."
        ) from error
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
        if node is not None and _expanded_size(node, {}) > MAX_SPEC_VALUES:
            raise FileFormatError(
                f"Spec file '{path}' stands for more than {MAX_SPEC_VALUES:,} values once its "
                "YAML aliases (*name) are expanded; write the spec out without them."
            )
    except RecursionError:
        raise FileFormatError(f"Spec file '{path}' nests too deeply to be a spec.") from None
    except yaml.YAMLError as error:
        try:
            data, node = json.loads(text), None
        except json.JSONDecodeError:
            raise FileFormatError(
                f"Spec file '{path}' is not valid YAML or JSON: {error}"
            ) from error
    source = _lines(node) if node is not None else {}
    try:
        return _from_dict(data, source, path.resolve().parent, check_costs=True)
    except InvalidProblemError as error:
        raise type(error)(f"{path}: {error}") from error
