"""Lazy imports of optional frameworks, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from qopt.exceptions import MissingDependencyError


def import_optional(module: str, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the qopt extra.

    Args:
        module: Dotted module name, e.g. ``"dwave.system"``.
        extra: The qopt extra that installs it, e.g. ``"dwave"``.
        purpose: What needs it, for the message (defaults to the module name).
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        what = purpose or module
        raise MissingDependencyError(
            f"{what} needs the optional package '{module}', which is not installed "
            f"({error}). Install it with: pip install 'qopt[{extra}]'"
        ) from error
