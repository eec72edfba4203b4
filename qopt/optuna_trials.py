"""Optuna trial glue shared by the samplers built on the search core.

:class:`qopt.integrations.optuna.QuboSampler` and the architecture sampler of ``qopt nas``
both translate Optuna trials into :mod:`qopt.search`; what they do with a trial the same way
lives here once. Imported only by code that already uses Optuna.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from qopt.search import CLAIM_ATTR, Claim, claim_of, outcome_quantile

__all__ = ["other_claims", "record_observed_quantile", "set_system_attr"]


def set_system_attr(study: Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """Annotate ``trial`` in the study's storage from inside a sampler."""
    # Optuna has no public way for a sampler to annotate a trial; its own samplers write
    # through the storage like this (e.g. NSGAIISampler's generation attribute).
    study._storage.set_trial_system_attr(trial._trial_id, key, value)


def record_observed_quantile(
    study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
) -> None:
    """Store where a model proposal's value landed among the trials completed before it.

    With ``qopt:predicted_quantile`` (the surrogate's forecast of the same, made before the
    trial ran) this gives an out-of-sample check of the surrogate on every model trial.
    """
    if "qopt:predicted_quantile" not in trial.system_attrs or len(study.directions) > 1:
        return
    if state not in (TrialState.FAIL, TrialState.COMPLETE):
        return
    sign = 1.0 if study.direction == StudyDirection.MINIMIZE else -1.0
    earlier = [
        sign * float(t.value)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.number < trial.number and t.value is not None
    ]
    complete = state == TrialState.COMPLETE
    told = sign * float(values[0]) if values is not None and complete else None
    set_system_attr(study, trial, "qopt:observed_quantile", outcome_quantile(told, earlier))


def other_claims(
    study: Study, trial: FrozenTrial, point_of: Callable[[FrozenTrial], Any]
) -> list[Claim]:
    """The claims of every trial but ``trial`` (:func:`qopt.search.claim_of`).

    ``point_of(t)`` gives trial ``t``'s point when its claim needs it.
    """
    claims = (
        claim_of(
            t.number,
            t.state.is_finished(),
            t.system_attrs.get(CLAIM_ATTR),
            functools.partial(point_of, t),
        )
        for t in study.get_trials(deepcopy=False)
        if t.number != trial.number
    )
    return [c for c in claims if c is not None]
