"""Lazy imports of optional frameworks, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

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
            f"({error}). Install it with: pip install 'qopt-loop[{extra}]'"
        ) from error


def load_object(reference: str, extra: str | None, purpose: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute (a registry's lazy entry).

    Args:
        reference: ``"package.module:attribute"``.
        extra: The qopt extra that installs what the module needs, or ``None``.
        purpose: What needs it, for the message (``"Solver 'dwave'"``).

    Raises:
        MissingDependencyError: The module, or a package it imports, is not installed.
    """
    module_name, _, attribute = reference.partition(":")
    try:
        module = importlib.import_module(module_name)
    except MissingDependencyError:
        raise
    except ImportError as error:
        how = f"pip install 'qopt-loop[{extra}]'" if extra else "reinstall qopt-loop"
        raise MissingDependencyError(
            f"{purpose} needs packages that are not installed ({error}). Install them with: {how}"
        ) from error
    return getattr(module, attribute)
