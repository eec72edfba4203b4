"""A budget's cost measured on the spec's model builder: probe builds, the fit, the check.

Imported by :mod:`qopt.nas._spec` only for a ``params`` or ``flops`` budget of a space with a
builder (it imports torch). The fit itself is :func:`qopt.model_analysis.choice_cost.fit_choice_cost`;
this module turns value positions into the builder's architecture dicts, caches every count,
reports progress of long probes, and says which probe build failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qopt.exceptions import BuilderError, InvalidProblemError
from qopt.model_analysis.choice_cost import ChoiceCost, build_for_counting, fit_choice_cost

__all__ = ["PROGRESS_FROM", "BuilderCost", "describe_disagreement", "probe"]

#: Probes planned with at least this many builds show a progress bar (on a terminal).
PROGRESS_FROM = 200
#: What a budget's ``kind`` measures on a built model.
MEASURED = {"params": "params", "flops": "flops"}


class BuilderCost:
    """The measured cost of an architecture (by value positions): built on meta and counted.

    Every count is cached, so the fit's probes, the checks and later feasibility checks of the
    same architecture build it once.

    Args:
        build: The builder, ``build(architecture) -> nn.Module``.
        values: Each choice's values, in order.
        kind: ``"params"`` or ``"flops"`` (a budget's kind).
        label: How an error names the builder and the budget (``"budget 'params' ..."``).
    """

    def __init__(
        self,
        build: Callable[[dict[str, Any]], Any],
        values: Mapping[str, Sequence[Any]],
        kind: str,
        *,
        label: str,
    ) -> None:
        if kind not in MEASURED:
            raise InvalidProblemError(
                f"{label}: a builder measures 'params' or 'flops', not {kind!r}; give this "
                "budget its 'costs', or set 'kind: params' or 'kind: flops'."
            )
        self.build = build
        self.values = {n: tuple(v) for n, v in values.items()}
        self.metric = MEASURED[kind]
        self.label = label
        self.cache: dict[tuple[int, ...], float] = {}

    def architecture(self, positions: Mapping[str, int]) -> dict[str, Any]:
        """The architecture dict of value positions."""
        return {n: v[int(positions[n])] for n, v in self.values.items()}

    def __call__(self, positions: Mapping[str, int]) -> float:
        key = tuple(int(positions[n]) for n in self.values)
        if key not in self.cache:
            arch = self.architecture(positions)
            try:
                self.cache[key] = build_for_counting(self.build, arch, self.metric)
            except InvalidProblemError as error:
                raise BuilderError(f"{self.label}: {error}") from error
            except Exception as error:  # the user's builder: report any failure
                raise BuilderError(
                    f"{self.label}: the builder failed on the probe architecture {arch} "
                    f"({type(error).__name__}: {error}). Every architecture of the space is "
                    "built to measure the budget: make the builder accept this one, remove the "
                    "value from the choices, or write the budget's 'costs' by hand."
                ) from error
        return self.cache[key]


def probe(cost: BuilderCost, sizes: Mapping[str, int], *, name: str) -> ChoiceCost:
    """The fitted cost of budget ``name`` from probe builds, with a progress bar for long
    probes (``1 + sum(n_c - 1) + pairs + checks`` builds, more for interacting pairs)."""
    bar: Any = None

    def progress(done: int, planned: int) -> None:
        nonlocal bar
        if bar is None and planned >= PROGRESS_FROM:
            from tqdm.auto import tqdm

            # disable=None: shown on a terminal only
            bar = tqdm(total=planned, desc=f"probing budget '{name}'", unit="build", disable=None)
        if bar is not None:
            bar.total = planned
            bar.n = done
            bar.refresh()

    try:
        return fit_choice_cost(lambda p: cost(p), sizes, progress=progress)
    finally:
        if bar is not None:
            bar.close()


def describe_disagreement(
    cost: BuilderCost,
    modelled: Callable[[Mapping[str, int]], float],
    names: Sequence[str],
) -> str | None:
    """Where hand-written costs (``modelled``) and the builder's counts disagree, in words;
    ``None`` when they agree on every architecture built so far.

    A disagreement at the base architecture is named as such; one that appears with a single
    change from the base names that choice and value; else the first architecture built where
    the two differ.
    """
    wrong = []
    for key, measured in cost.cache.items():
        positions = dict(zip(names, key, strict=True))
        said = modelled(positions)
        if abs(said - measured) > 1e-9 * max(1.0, abs(measured)):
            wrong.append((sum(1 for k in key if k), positions, said, measured))
    if not wrong:
        return None
    changes, positions, said, measured = min(wrong, key=lambda w: w[0])
    arch = cost.architecture(positions)
    if changes == 0:
        where = f"on the base architecture {arch}"
    elif changes == 1:
        moved = next(n for n in names if positions[n])
        where = f"with '{moved}' = {arch[moved]!r} (others at their first values: {arch})"
    else:
        where = f"on {arch}"
    return (
        f"{where} the costs say {said:g} {cost.metric}, the built model has {measured:g} "
        f"({len(wrong)} of {len(cost.cache)} probe architectures disagree)"
    )
