"""How the attack judges one case: a clear refusal or a sane result is ``ok``; anything else is
a failure with a kind (raw traceback, native abort, silent wrong result, hang, ...)."""

from __future__ import annotations

import contextlib
import io
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

OK = "ok"
TRACEBACK = "raw traceback"
NATIVE_ABORT = "native abort"
SILENT_WRONG = "silent wrong result"
REFUSED_VALID = "valid input refused"
HANG = "hang"
UNCLEAR = "unclear error"
NOT_REPRODUCIBLE = "not reproducible"
LOST = "trials lost"
DUPLICATE = "duplicate evaluations"
RUNNING = "trials left RUNNING"

Expect = Literal["error", "ok", "any"]


@dataclass(frozen=True)
class Case:
    """One attack: ``run(scratch)`` returns a verdict dict (``verdict`` and ``detail``);
    ``timeout_s`` after which it counts as a hang."""

    id: str
    run: Callable[[Path], dict[str, Any]]
    timeout_s: float = 60.0


def verdict(kind: str, detail: str = "", **extra: Any) -> dict[str, Any]:
    return {"verdict": kind, "detail": detail[:500], **extra}


def is_clear(message: str) -> bool:
    """A message a user can act on: one non-empty line (or two for argparse: usage, error)."""
    return bool(message.strip()) and "Traceback" not in message


def cli(
    argv: Sequence[str],
    expect: Expect,
    check: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """Run ``qopt`` with ``argv`` in this process and judge it.

    ``expect``: ``"error"`` (must be refused: exit 2 with one error line), ``"ok"`` (must
    succeed: exit 0 and ``check(stdout)`` returns None) or ``"any"`` (either). A raised
    exception other than SystemExit is a raw traceback.
    """
    from qopt.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv), out=out)
    except SystemExit as stop:  # argparse's usage errors
        code = stop.code if isinstance(stop.code, int) else 2
    except BaseException as error:  # this is what the attack looks for
        return verdict(TRACEBACK, f"{type(error).__name__}: {error}", argv=list(argv))
    stderr, stdout = err.getvalue(), out.getvalue()
    errors = [line for line in stderr.splitlines() if "error:" in line]
    common = {"argv": list(argv), "exit": code, "stderr": stderr[-300:]}
    if code == 2:
        if len(errors) != 1 or not is_clear(stderr):
            return verdict(UNCLEAR, stderr, **common)
        return verdict(OK if expect != "ok" else REFUSED_VALID, errors[0], **common)
    if code == 0:
        if expect == "error":
            return verdict(SILENT_WRONG, "accepted: " + stdout[:200], **common)
        problem = None if check is None else check(stdout)
        return verdict(OK if problem is None else SILENT_WRONG, problem or "", **common)
    said = (stderr + stdout).strip()
    if code == 1 and expect != "ok" and is_clear(said):
        return verdict(OK, said.splitlines()[-1], **common)  # e.g. every evaluation failed
    return verdict(UNCLEAR, f"exit {code}: {stderr}", **common)


def call(
    fn: Callable[[], Any],
    expect: Expect,
    check: Callable[[Any], str | None] | None = None,
) -> dict[str, Any]:
    """Call ``fn`` and judge it: a :class:`~qopt.exceptions.QoptError` with a message is a clear
    refusal; any other exception a raw traceback; a result is checked by ``check``."""
    from qopt.exceptions import QoptError

    try:
        result = fn()
    except QoptError as error:
        if not str(error).strip():
            return verdict(UNCLEAR, type(error).__name__)
        return verdict(OK if expect != "ok" else REFUSED_VALID, f"{type(error).__name__}: {error}")
    except Exception as error:  # this is what the attack looks for
        where = traceback.extract_tb(error.__traceback__)[-1]
        return verdict(
            TRACEBACK, f"{type(error).__name__}: {error} ({where.filename}:{where.lineno})"
        )
    if expect == "error":
        return verdict(SILENT_WRONG, f"accepted: {result!r}"[:300])
    problem = None if check is None else check(result)
    return verdict(OK if problem is None else SILENT_WRONG, problem or "")


def finite_json(*keys: str, maybe: Sequence[str] = ()) -> Callable[[str], str | None]:
    """A check of ``qopt solve --json`` output: the ``keys`` are finite numbers, the ``maybe``
    keys finite numbers or null (never a nonsense gap)."""

    def check(stdout: str) -> str | None:
        import json

        try:
            data = json.loads(stdout)
        except ValueError:
            return "output is not JSON"
        for key in (*keys, *maybe):
            value = data.get(key)
            if value is None and key in maybe:
                continue
            if not isinstance(value, int | float) or not math.isfinite(value):
                return f"{key} = {value!r}"
        return None

    return check


def finite_energy(sampleset: Any) -> str | None:
    """A check of a sample set: at least one sample, every energy finite."""
    import numpy as np

    energies = np.asarray(sampleset.record.energy, dtype=float)
    if energies.size == 0:
        return "no sample"
    if not np.isfinite(energies).all():
        return f"energies {energies[:3]}"
    return None
