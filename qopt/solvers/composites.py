"""Composites that add qopt's cross-cutting concerns around any child :class:`dimod.Sampler`.

- :class:`MeteredComposite` measures every solve and stores a :class:`~qopt.metering.SolveRecord`
  in ``SampleSet.info["qopt"]``.
- :class:`FallbackComposite` answers a failed remote solve with a local solver, warns once with
  the cause, and marks the sample set so the record says so.

Children may declare three optional attributes the composites read: ``remote`` (the work runs
on someone else's hardware), ``device`` (``"cpu"`` or ``"cuda[:N]"``) and ``is_mock`` (timings
are fake and must never be reported).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import dimod

from qopt._validation import check_float
from qopt.exceptions import InvalidProblemError, SolverConfigurationError
from qopt.metering import Meter, SolveRecord

__all__ = ["FallbackComposite", "MeteredComposite", "QoptFallbackWarning"]

_FALLBACK_KEY = "qopt_fallback"


class QoptFallbackWarning(UserWarning):
    """A remote solver failed and a local one solved instead.

    Silence it with ``warnings.filterwarnings("ignore", category=QoptFallbackWarning)``.
    """


class FallbackComposite(dimod.ComposedSampler):
    """Solve with ``child``; if it fails, solve with ``fallback`` and say why.

    User errors (an invalid problem, a bad option) are raised, not hidden behind a fallback;
    anything else the child raises (no token, network error, timeout, missing package) is
    caught, reported in one :class:`QoptFallbackWarning` and recorded in the sample set. After
    a failure the child is not tried again for ``retry_after`` seconds, so that a training
    loop does not wait for a dead network's timeouts at every step.

    Args:
        child: The solver to try first, typically a remote one.
        fallback: The solver to use when ``child`` fails.
        name: The child's registry name, for messages.
        fallback_name: The fallback's registry name, for messages.
        retry_after: Seconds after a failure during which the child is skipped (0: always retry).

    Examples:
        >>> import dimod
        >>> from qopt.solvers import FallbackComposite, SimulatedAnnealingSolver
        >>> class Broken(dimod.Sampler):
        ...     parameters, properties = {}, {}
        ...     def sample(self, bqm, **kw):
        ...         raise ConnectionError("network unreachable")
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     solver = FallbackComposite(Broken(), SimulatedAnnealingSolver(seed=0),
        ...                                name="broken", fallback_name="sa")
        ...     ss = solver.sample(dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY"))
        >>> ss.info["qopt_fallback"]["to"]
        'sa'
    """

    def __init__(
        self,
        child: dimod.Sampler,
        fallback: dimod.Sampler,
        *,
        name: str,
        fallback_name: str,
        retry_after: float = 60.0,
    ) -> None:
        for argument, sampler in (("child", child), ("fallback", fallback)):
            if not isinstance(sampler, dimod.Sampler):
                raise SolverConfigurationError(
                    f"The '{argument}' parameter of {type(self).__name__} must be a "
                    f"dimod.Sampler. Got {type(sampler).__name__} instead."
                )
        self._children = [child, fallback]
        self.name = name
        self.fallback_name = fallback_name
        self.retry_after = check_float(retry_after, "retry_after", type(self).__name__, low=0.0)
        self._failed_at: float | None = None
        self._failure = ""

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self._children[0].parameters)

    @property
    def properties(self) -> dict[str, Any]:
        return {"child_properties": self._children[0].properties, "fallback": self.fallback_name}

    def __getattr__(self, attribute: str) -> Any:
        # remote / device / is_mock describe the child that is tried first.
        if attribute in ("remote", "device", "is_mock"):
            return getattr(self._children[0], attribute, False if attribute != "device" else "cpu")
        raise AttributeError(attribute)

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        child, fallback = self._children
        cooling = self._failed_at is not None and (
            time.monotonic() - self._failed_at < self.retry_after
        )
        if cooling:
            # A training loop must not wait for a dead network's timeouts at every step.
            reason = (
                f"not retried: failed {time.monotonic() - self._failed_at:.0f} s ago "  # type: ignore[operator]
                f"({self._failure}); retrying {self.retry_after:g} s after the failure"
            )
        else:
            try:
                sampleset = child.sample(bqm, **parameters)
                sampleset.resolve()
                self._failed_at = None
                return sampleset
            except (InvalidProblemError, SolverConfigurationError):
                raise
            except Exception as error:  # any remote failure: token, network, timeout, package
                reason = self._failure = f"{type(error).__name__}: {error}"
                self._failed_at = time.monotonic()
            warnings.warn(
                f"Solver '{self.name}' failed ({reason}); solved with '{self.fallback_name}' "
                f"instead, and will not retry it for {self.retry_after:g} s. Pass fallback=None "
                f"to get_solver('{self.name}') to raise instead.",
                QoptFallbackWarning,
                stacklevel=2,
            )
        accepted = {k: v for k, v in parameters.items() if k in fallback.parameters}
        sampleset = fallback.sample(bqm, **accepted)
        sampleset.resolve()
        sampleset.info[_FALLBACK_KEY] = {
            "from": self.name,
            "to": self.fallback_name,
            "reason": reason,
        }
        return sampleset


class MeteredComposite(dimod.ComposedSampler):
    """Measure every solve of ``child`` and attach a :class:`~qopt.metering.SolveRecord`.

    The record goes in ``sampleset.info["qopt"]`` as a dict (so the sample set stays
    serializable); :func:`qopt.metering.record_of` turns it back into a record. The child's own
    ``info["timing"]`` keys are kept as they are.

    Args:
        child: The solver to measure.
        name: The registry name, stored in the record.

    Examples:
        >>> import dimod
        >>> from qopt.metering import record_of
        >>> from qopt.solvers import MeteredComposite, SimulatedAnnealingSolver
        >>> solver = MeteredComposite(SimulatedAnnealingSolver(seed=0), name="sa")
        >>> ss = solver.sample(dimod.BinaryQuadraticModel({"a": -1}, {}, 0, "BINARY"))
        >>> record_of(ss).energy_provenance in ("measured", "estimated")
        True
    """

    def __init__(self, child: dimod.Sampler, *, name: str) -> None:
        self._children = [child]
        self.name = name

    @property
    def children(self) -> list[dimod.Sampler]:
        return self._children

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.child.parameters)

    @property
    def properties(self) -> dict[str, Any]:
        return {"child_properties": self.child.properties, "name": self.name}

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        child = self.child
        meter = Meter(getattr(child, "device", "cpu"), remote=getattr(child, "remote", False))
        with meter:
            sampleset = child.sample(bqm, **parameters)
            sampleset.resolve()
            fallback = sampleset.info.pop(_FALLBACK_KEY, None)
            if fallback is not None:
                meter.remote = False  # the fallback did the work here
        reading = meter.reading
        timing = dict(sampleset.info.get("timing", {}))
        qpu_us = timing.get("qpu_access_time")
        is_mock = bool(getattr(child, "is_mock", False)) and fallback is None
        record = SolveRecord(
            solver=self.name,
            solved_by=fallback["to"] if fallback else self.name,
            num_variables=bqm.num_variables,
            wall_s=reading.wall_s,
            cpu_s=reading.cpu_s,
            qpu_access_s=None if qpu_us is None or fallback else float(qpu_us) / 1e6,
            energy_j=reading.energy.joules,
            energy_provenance=reading.energy.provenance,
            energy_method=reading.energy.method,
            fallback=fallback["reason"] if fallback else None,
            mock=is_mock,
            timing=timing,
        )
        sampleset.info["qopt"] = record.to_dict()
        return sampleset
