"""The schema of a search-space spec: one pydantic model per section.

The single place where a spec's keys, their types and their allowed values are declared.
:mod:`qopt.nas._spec` validates a whole spec file with :class:`SpecDocument` (an error names
the spec key and its line) and every object built in Python (``Choice``, ``Budget``, ...)
with the model of its section (an error names the object). Either way the error is an
:class:`~qopt.exceptions.InvalidProblemError` that says what was expected and what to do.
"""

from __future__ import annotations

import math
import numbers
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from qopt.exceptions import InvalidProblemError

__all__ = [
    "BUDGET_KINDS",
    "DIRECTIONS",
    "KINDS",
    "MEASURED_KINDS",
    "PRUNERS",
    "BudgetSection",
    "ChoiceSection",
    "ObjectiveSection",
    "PairSection",
    "SpecDocument",
    "TrainSection",
    "check",
    "key_path",
    "validation_message",
]

ChoiceKind = Literal["categorical", "int", "ordinal"]
BudgetKind = Literal["params", "flops", "latency", "cost"]
Direction = Literal["minimize", "maximize"]
PrunerName = Literal["median", "successive-halving", "none"]
KINDS: tuple[str, ...] = typing.get_args(ChoiceKind)
BUDGET_KINDS: tuple[str, ...] = typing.get_args(BudgetKind)
DIRECTIONS: tuple[str, ...] = typing.get_args(Direction)
PRUNERS: tuple[str, ...] = typing.get_args(PrunerName)


def _as_name(value: Any) -> Any:
    """YAML reads ``name: 3`` as a number: a name is its text."""
    return str(value) if isinstance(value, numbers.Number) else value


def _as_int(value: Any) -> Any:
    """numpy integers count as ints; bools do not."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def _none_as(empty: Any) -> BeforeValidator:
    """An absent section written as ``key:`` (YAML null) means an empty one."""
    return BeforeValidator(lambda value: type(empty)() if value is None else value)


Name = Annotated[str, BeforeValidator(_as_name), Field(min_length=1)]
Integer = Annotated[int, BeforeValidator(_as_int)]


def _entry_point(value: str | None, example: str) -> str | None:
    if value is not None and ":" not in value:
        raise PydanticCustomError(
            "entry_point",
            "{value} is not an entry point; write {example}",
            {"value": repr(value), "example": example},
        )
    return value


class Section(BaseModel):
    """Unknown keys are refused and nothing is coerced but a number to a float."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class ChoiceSection(Section):
    """One choice: ``values``, or for ``type: int`` also ``low``, ``high`` and ``step``."""

    name: Name
    type: ChoiceKind = "categorical"
    values: list[Any] | None = Field(
        None, min_length=1, description="list at least one value (two to have a choice)"
    )
    low: Integer | None = None
    high: Integer | None = None
    step: Integer = Field(1, ge=1)

    @field_validator("values")
    @classmethod
    def _storable_and_distinct(cls, values: list[Any] | None) -> list[Any] | None:
        for v in values or ():
            if not isinstance(v, str | int | float | bool) or (
                isinstance(v, float) and not math.isfinite(v)
            ):
                raise PydanticCustomError(
                    "choice_value",
                    "value {value} is not a str, int, bool or finite float (values are "
                    "stored in Optuna and JSON)",
                    {"value": repr(v)},
                )
        if values is not None and len(set(map(repr, values))) != len(values):
            raise PydanticCustomError(
                "choice_repeat", "values repeat: {values}; list each once", {"values": values}
            )
        return values

    @model_validator(mode="after")
    def _values_or_range(self) -> ChoiceSection:
        if self.values is None:
            if self.type != "int":
                raise PydanticCustomError("missing_key", "'values' is missing")
            for key in ("low", "high"):
                if getattr(self, key) is None:
                    raise PydanticCustomError(
                        "missing_key", "'{key}' is missing (or give 'values')", {"key": key}
                    )
            if self.low is not None and self.high is not None and self.low > self.high:
                raise PydanticCustomError(
                    "empty_range",
                    "low={low} > high={high}: no values; swap them",
                    {"low": self.low, "high": self.high},
                )
            if self.low is not None and self.high is not None:
                count = (self.high - self.low) // self.step + 1
                if count > MAX_CHOICE_VALUES:  # each value is listed (and a bit in the QUBO)
                    raise PydanticCustomError(
                        "range_too_large",
                        "the range has {count} values; at most {most}: raise 'step'",
                        {"count": count, "most": MAX_CHOICE_VALUES},
                    )
        elif self.type == "int" and not all(
            isinstance(v, int) and not isinstance(v, bool) for v in self.values
        ):
            raise PydanticCustomError("int_values", "a choice of type 'int' needs int values")
        return self


#: Values an ``int`` choice's range may hold.
MAX_CHOICE_VALUES = 1_000_000


class PairSection(Section):
    """A quadratic cost between two choices: a coefficient or a table by value positions."""

    between: list[Name] = Field(
        min_length=2, max_length=2, description="write 'between: [first, second]'"
    )
    coefficient: float | None = None
    table: list[list[float]] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> PairSection:
        if (self.coefficient is None) == (self.table is None):
            raise PydanticCustomError(
                "pair_form",
                "give exactly one of 'coefficient' (cost = coefficient * a * b) or 'table' "
                "(table[i][j])",
            )
        return self


def _cost_table(table: Any) -> Any:
    """``[[value, cost], ...]`` (JSON keeps non-string values so) as a mapping."""
    pairs = isinstance(table, Sequence) and not isinstance(table, str)
    if pairs and all(isinstance(row, Sequence) and len(row) == 2 for row in table):
        return {value: cost for value, cost in table}
    return table


#: Budget kinds a model builder measures: with only a ``max``, qopt derives their costs.
MEASURED_KINDS = ("params", "flops")


class BudgetSection(Section):
    """A hard budget: per-choice costs and/or pair costs, a constant, an optional exact cost;
    or, for ``kind: params`` or ``kind: flops``, only a ``max`` (costs from the builder)."""

    name: Name
    max: float = Field(description="give the budget's bound (a number)")
    kind: BudgetKind = "cost"
    costs: Annotated[
        dict[Name, Annotated[dict[Any, float], BeforeValidator(_cost_table)]], _none_as({})
    ] = {}
    pairs: Annotated[list[PairSection], _none_as([])] = []
    constant: float = 0.0
    exact: str | None = None
    probed: bool = False

    @model_validator(mode="before")
    @classmethod
    def _named_by_kind(cls, data: Any) -> Any:
        """``{kind: params, max: 50000}`` is the budget named ``params``."""
        if isinstance(data, Mapping) and "name" not in data and "kind" in data:
            return {"name": data["kind"], **data}
        return data

    @field_validator("exact")
    @classmethod
    def _exact_reference(cls, exact: str | None) -> str | None:
        if exact is not None and exact != "builder" and ":" not in exact:
            raise PydanticCustomError(
                "exact_reference",
                "exact={exact} is not an exact cost; write 'benchmark:nbg-<dataset>:params' "
                "(or ':latency'), 'builder' (build and count each architecture), or leave it out",
                {"exact": repr(exact)},
            )
        return exact

    @model_validator(mode="after")
    def _has_costs(self) -> BudgetSection:
        if not self.costs and not self.pairs and self.kind not in MEASURED_KINDS:
            raise PydanticCustomError(
                "budget_terms",
                "the budget has neither per-choice 'costs' nor 'pairs'; give one (a budget of "
                "kind 'params' or 'flops' may give only 'max': its costs are then measured on "
                "the model builder)",
            )
        return self


class ObjectiveSection(Section):
    """A metric to optimize and its direction."""

    name: Name
    direction: Direction = "minimize"


class TrainSection(Section):
    """How a Lightning objective trains each architecture (:class:`qopt.nas.Training`)."""

    max_epochs: Integer = Field(5, ge=1)
    max_time_s: float | None = Field(None, gt=0)
    monitor: str = "val_acc"
    pruner: PrunerName = "median"
    pruner_options: dict[str, Any] = {}
    data: str | None = None
    accelerator: str = "cpu"
    save_weights: bool = True

    @field_validator("data")
    @classmethod
    def _data_entry_point(cls, data: str | None) -> str | None:
        return _entry_point(data, "'package.module:function'")


def _objectives(value: Any) -> Any:
    """No objectives means one, ``objective`` (minimized); a bare name means that metric."""
    if not value:
        return [{"name": "objective"}]
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class SpecDocument(Section):
    """A whole spec file."""

    name: Name = "qopt-nas"
    choices: list[ChoiceSection] = Field(min_length=1, description="give a list of choices")
    budgets: Annotated[list[BudgetSection], _none_as([])] = []
    objectives: Annotated[list[ObjectiveSection], BeforeValidator(_objectives)] = Field(
        [], validate_default=True
    )
    evaluate: str | None = Field(
        None,
        description="a function of the architecture dict, or a benchmark table",
    )
    build: str | None = Field(
        None,
        description="a function returning the torch model of an architecture dict",
    )
    train: TrainSection | None = Field(
        None, description="write e.g. 'train: {max_epochs: 5, monitor: val_acc}'"
    )

    @field_validator("evaluate")
    @classmethod
    def _evaluate_entry_point(cls, evaluate: str | None) -> str | None:
        return _entry_point(evaluate, "'package.module:function' or 'benchmark:nb201-cifar10'")

    @field_validator("build")
    @classmethod
    def _build_entry_point(cls, build: str | None) -> str | None:
        return _entry_point(build, "'package.module:function'")


# ---------------------------------------------------------------------- errors
def key_path(loc: Sequence[int | str]) -> str:
    """``("budgets", 0, "max")`` as the spec key ``budgets[0].max``.

    Examples:
        >>> key_path(("choices", 1, "type"))
        'choices[1].type'
    """
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _field(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[type[BaseModel], Any]:
    """The model holding the last key of ``loc`` and that key's field (None: no such field)."""
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part)
        if info is None:
            return model, None
        inner = [info.annotation]
        while inner:
            t = inner.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                model = t
                break
            inner.extend(typing.get_args(t))
    return model, info


#: Errors raised by the sections' own validators: their message says it all.
_OWN = frozenset(
    {"entry_point", "choice_value", "choice_repeat", "missing_key", "empty_range", "int_values"}
    | {"pair_form", "exact_reference", "budget_terms"}
)
#: What a literal field's values are called in a message.
_LITERALS = {"type": "choice type", "kind": "budget kind"}


def validation_message(model: type[BaseModel], error: ErrorDetails) -> tuple[str, str]:
    """The spec key of a pydantic error and what to say about it (what is wrong, what to do).

    Examples:
        >>> try:
        ...     SpecDocument.model_validate({"choices": [{"name": "op", "type": "float"}]})
        ... except ValidationError as error:
        ...     validation_message(SpecDocument, error.errors()[0])
        ('choices[0].type', "unknown choice type 'float'; use one of ['categorical', 'int', 'ordinal']")
    """
    loc = [p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    kind, given = error["type"], error.get("input")
    holder, info = _field(model, loc)
    key = str(loc[-1]) if loc else ""
    hint = "" if info is None or not info.description else f"; {info.description}"
    if kind in _OWN:
        return key_path(loc), str(error["msg"])
    if kind == "missing":
        return key_path(loc[:-1]), f"'{key}' is missing{hint}"
    if kind == "extra_forbidden":
        return key_path(loc), f"unknown key '{key}'; the keys are {sorted(holder.model_fields)}"
    if kind == "literal_error" and info is not None:
        allowed = list(typing.get_args(info.annotation))
        return key_path(loc), f"unknown {_LITERALS.get(key, key)} {given!r}; use one of {allowed}"
    if kind in ("model_type", "dict_type"):
        return key_path(loc), f"'{key}' must be a mapping{hint}. Got {given!r}"
    if kind == "list_type":
        return key_path(loc), f"'{key}' must be a list{hint}. Got {given!r}"
    if kind in ("too_short", "too_long"):
        size = "is empty" if not given else f"has {len(given)} item" + "s" * (len(given) > 1)
        return key_path(loc), f"'{key}' {size}{hint}"
    message = str(error["msg"]).replace("Input should be", "must be")
    return key_path(loc), f"'{key}' {message}{hint}. Got {given!r} instead"


SectionT = TypeVar("SectionT", bound=Section)


def check(model: type[SectionT], data: Mapping[str, Any], owner: str) -> SectionT:
    """``data`` validated by ``model``; an error names ``owner`` and the key.

    Examples:
        >>> check(ObjectiveSection, {"name": "loss", "direction": "up"}, "Objective 'loss'")
        Traceback (most recent call last):
        ...
        qopt.exceptions.InvalidProblemError: Objective 'loss' (direction): unknown direction 'up'; use one of ['minimize', 'maximize'].
    """
    try:
        return model.model_validate(dict(data))
    except ValidationError as error:
        key, message = validation_message(model, error.errors()[0])
        at = f" ({key})" if key else ""
        raise InvalidProblemError(f"{owner}{at}: {message}.") from None
