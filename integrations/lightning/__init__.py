"""qopt for Lightning users (installed as qopt.integrations.lightning)."""

from __future__ import annotations

__all__: list[str] = []
