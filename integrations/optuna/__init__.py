"""qopt for Optuna users (installed as qopt.integrations.optuna)."""

from __future__ import annotations

__all__: list[str] = []
