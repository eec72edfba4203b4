"""The exceptions qopt raises.

Every error derives from :class:`QoptError`, and each subclass also inherits the builtin a
caller would naturally catch (``ValueError``, ``ImportError``, ...), so ``except ValueError``
keeps working for code that does not know about qopt.
"""

from __future__ import annotations

__all__ = [
    "BuilderError",
    "FileFormatError",
    "InvalidInputError",
    "InvalidProblemError",
    "MissingDependencyError",
    "NoSolveRecordError",
    "NotReadyError",
    "ProblemTooLargeError",
    "QoptError",
    "RunDirectoryBusyError",
    "SolverConfigurationError",
    "SolverUnavailableError",
    "StorageUnavailableError",
    "UnknownNameError",
    "UnknownSolverError",
]


class QoptError(Exception):
    """Root of every error raised by qopt."""


class MissingDependencyError(QoptError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class UnknownSolverError(QoptError, KeyError):
    """A solver name is not in the registry; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message.
        return str(self.args[0]) if self.args else ""


class UnknownNameError(QoptError, KeyError):
    """A name (of a pruning group, ...) is not one the object has; the message lists its names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message.
        return str(self.args[0]) if self.args else ""


class NoSolveRecordError(QoptError, KeyError):
    """A sample set carries no qopt solve record: it did not come from a metered solver."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message.
        return str(self.args[0]) if self.args else ""


class NotReadyError(QoptError, RuntimeError):
    """A result was asked for before it exists (a Meter's reading inside its ``with`` block)."""


class SolverConfigurationError(QoptError, ValueError):
    """A solver option is missing, unknown or out of range."""


class InvalidProblemError(QoptError, ValueError):
    """A problem (BQM, constraint, ...) cannot be solved as given: empty, non-finite, ..."""


class InvalidInputError(QoptError, ValueError):
    """Data passed at call time (features, labels) has the wrong shape, type or values."""


class BuilderError(InvalidProblemError):
    """A model builder failed on an architecture, or built a model whose cost a budget cannot
    measure; the message names the architecture and what to change."""


class ProblemTooLargeError(InvalidProblemError):
    """A problem exceeds what a backend can take; the message gives the size, the limit and the way out."""


class FileFormatError(QoptError, ValueError):
    """A problem file is malformed; the message names the file, the line and what was expected."""


class SolverUnavailableError(QoptError, RuntimeError):
    """A backend could not run (no token, network error, timeout) and no fallback was allowed."""


class StorageUnavailableError(SolverUnavailableError):
    """A search's storage (a database URL, a run directory) cannot be reached or opened."""


class RunDirectoryBusyError(StorageUnavailableError):
    """Another runner holds a search's run directory; the message says how to share a search."""
