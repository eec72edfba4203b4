"""Optuna integration: :class:`QuboSampler`, hyperparameter search as a QUBO.

Importing this module imports Optuna; ``import qopt`` does not.

Examples:
    >>> import optuna
    >>> from qopt.integrations.optuna import QuboSampler
    >>> study = optuna.create_study(sampler=QuboSampler(solver="sa", seed=0))
    >>> type(study.sampler).__name__
    'QuboSampler'
"""

from __future__ import annotations

from qopt._optional import import_optional

import_optional("optuna", "optuna", "qopt.integrations.optuna")

from qopt.integrations.optuna._demo import demo_study, print_sampler_demo  # noqa: E402
from qopt.integrations.optuna._sampler import QuboSampler  # noqa: E402

__all__ = ["QuboSampler", "demo_study", "print_sampler_demo"]
