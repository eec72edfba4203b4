"""D-Wave backends: the QPU through minor embedding, and the Leap hybrid BQM solver.

Both are configured the way D-Wave Ocean is: a Leap API token from the config file written by
``dwave config create``, or from the ``DWAVE_API_TOKEN`` environment variable, or passed as
``token=``; the solver is picked by Ocean's feature-based selection (``solver=``). Nothing here
touches the network until the first :meth:`~dimod.Sampler.sample`, and a missing token is
detected locally before any connection is attempted, so a fallback to a local solver is instant.

This module imports dwave-system at import time; the registry imports it only when a D-Wave
backend is asked for, so ``import qopt`` stays light. :func:`leap_status` lives in
:mod:`qopt.solvers.accounts` (re-exported here), which ``qopt solvers`` reads without importing
dwave-system.

Examples:
    >>> from qopt.solvers.dwave import leap_status
    >>> ready, message = leap_status()   # reads the local config; no network
    >>> isinstance(ready, bool) and isinstance(message, str)
    True
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

import dimod
import numpy as np
from dwave.cloud.config.exceptions import ConfigFileError
from dwave.cloud.exceptions import (
    CanceledFutureError,
    PollingTimeout,
    ProblemUploadError,
    UseAfterCloseError,
)
from dwave.system import DWaveSampler, EmbeddingComposite, LeapHybridSampler

from qopt._validation import check_bqm, check_float, check_int
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError, SolverUnavailableError
from qopt.solvers.accounts import LEAP_HOW_TO_CONFIGURE, leap_status, leap_token_source

__all__ = ["DWaveSolver", "LeapHybridSolver", "leap_status"]

#: What a remote request can raise once a client exists: requests' errors (all OSError,
#: including every dwave.cloud SolverError and RequestTimeout) and the cloud client's own.
_REMOTE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    PollingTimeout,
    CanceledFutureError,
    ProblemUploadError,
    UseAfterCloseError,
    ConfigFileError,
)


def _check_optional_str(value: Any, name: str, owner: str) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise SolverConfigurationError(
        f"The '{name}' parameter of {owner} must be a non-empty str or None. Got {value!r} instead."
    )


def _check_solver(value: Any, owner: str) -> str | dict[str, Any] | None:
    if value is None or (isinstance(value, str) and value):
        return value
    if isinstance(value, Mapping):
        return dict(value)
    raise SolverConfigurationError(
        f"The 'solver' parameter of {owner} must be a solver name (str), an Ocean "
        "feature-based selection dict such as {'topology__type': 'pegasus'}, or None. "
        f"Got {value!r} instead."
    )


class _LeapSolver(dimod.Sampler):
    """Shared machinery: Ocean configuration, the token check, lazy connection, close()."""

    #: Registry name, used in messages and solve records.
    name: ClassVar[str]
    #: What the lazily built Ocean sampler is, for messages ("a D-Wave QPU solver", ...).
    what: ClassVar[str]
    #: The parameters qopt knows before connecting; afterwards the solver's own list.
    offline_parameters: ClassVar[tuple[str, ...]]

    def __init__(
        self,
        *,
        solver: str | Mapping[str, Any] | None,
        token: str | None,
        endpoint: str | None,
        region: str | None,
        profile: str | None,
        config_file: str | os.PathLike[str] | None,
        sampler: dimod.Sampler | None,
        defaults: dict[str, Any],
    ) -> None:
        owner = type(self).__name__
        self.solver = _check_solver(solver, owner)
        self.token = _check_optional_str(token, "token", owner)
        self.endpoint = _check_optional_str(endpoint, "endpoint", owner)
        self.region = _check_optional_str(region, "region", owner)
        self.profile = _check_optional_str(profile, "profile", owner)
        if config_file is not None and not isinstance(config_file, str | os.PathLike):
            raise SolverConfigurationError(
                f"The 'config_file' parameter of {owner} must be a path or None. "
                f"Got {config_file!r} instead."
            )
        self.config_file = None if config_file is None else os.fspath(config_file)
        self._defaults = {k: v for k, v in defaults.items() if v is not None}
        self._lock = threading.Lock()
        self._sampler: dimod.Sampler | None = None
        self._owns_sampler = False
        self.is_mock = False
        self.remote = True
        if sampler is not None:
            given = [
                n
                for n in ("solver", "token", "endpoint", "region", "profile", "config_file")
                if getattr(self, n) is not None
            ]
            if given:
                raise SolverConfigurationError(
                    f"The {given} parameter(s) of {owner} configure a connection and have no "
                    "effect with an injected sampler; pass one or the other."
                )
            self._sampler = self._wrap_injected(sampler)
            self.is_mock = not self._is_real(sampler)
            self.remote = not self.is_mock

    # Subclasses say how to build, wrap and recognize their Ocean sampler.
    @abstractmethod
    def _wrap_injected(self, sampler: dimod.Sampler) -> dimod.Sampler:
        """The injected Ocean sampler as this backend uses it (e.g. behind an embedding)."""

    @abstractmethod
    def _is_real(self, sampler: dimod.Sampler) -> bool:
        """Whether ``sampler`` reaches real hardware (not one of Ocean's mocks)."""

    @abstractmethod
    def _connect_with(self, options: dict[str, Any]) -> dimod.Sampler:
        """Build the Ocean sampler from the configuration ``options``."""

    @property
    def connected(self) -> bool:
        """Whether the Ocean sampler exists (injected, or built by a first solve)."""
        return self._sampler is not None

    def _connection_options(self) -> dict[str, Any]:
        options = {
            "solver": self.solver,
            "token": self.token,
            "endpoint": self.endpoint,
            "region": self.region,
            "profile": self.profile,
            "config_file": self.config_file,
        }
        return {k: v for k, v in options.items() if v is not None}

    def _connect(self) -> dimod.Sampler:
        """The Ocean sampler, built on first use after a local token check."""
        with self._lock:
            if self._sampler is not None:
                return self._sampler
            found, where = leap_token_source(
                token=self.token, config_file=self.config_file, profile=self.profile
            )
            if not found:
                raise SolverUnavailableError(
                    f"{type(self).__name__} cannot connect to D-Wave Leap: {where} "
                    f"{LEAP_HOW_TO_CONFIGURE}"
                )
            try:
                sampler = self._connect_with(self._connection_options())
            except Exception as error:  # any failure to reach a solver: auth, network, none
                raise SolverUnavailableError(
                    f"{type(self).__name__} could not connect to {self.what} with the token "
                    f"from {where} ({type(error).__name__}: {error})."
                ) from error
            self._sampler = sampler
            self._owns_sampler = True
            return sampler

    @property
    def parameters(self) -> dict[str, list[Any]]:
        """Sampling parameters: qopt's known ones until connected, then the solver's list."""
        if self._sampler is None:
            return {name: [] for name in self.offline_parameters}
        return dict(self._sampler.parameters)

    @property
    def properties(self) -> dict[str, Any]:
        """Name, defaults and, once connected, the solver's own properties."""
        properties: dict[str, Any] = {
            "name": self.name,
            "defaults": dict(self._defaults),
            "connected": self.connected,
            "mock": self.is_mock,
        }
        if self._sampler is not None:
            properties["child_properties"] = self._sampler.properties
        return properties

    def _check_parameters(self, parameters: Mapping[str, Any], sampler: dimod.Sampler) -> None:
        unknown = set(parameters) - set(sampler.parameters)
        if unknown:
            raise SolverConfigurationError(
                f"{type(self).__name__}.sample() got unknown parameter(s) {sorted(unknown)}. "
                f"Its parameters are: {', '.join(sorted(sampler.parameters))}."
            )

    def _unavailable(self, error: BaseException) -> SolverUnavailableError:
        return SolverUnavailableError(
            f"{type(self).__name__}: the request to {self.what} failed "
            f"({type(error).__name__}: {error})."
        )

    @staticmethod
    def _empty(bqm: dimod.BinaryQuadraticModel) -> dimod.SampleSet:
        # dimod's contract: an empty BQM gets an empty sample set, with no remote call.
        return dimod.SampleSet.from_samples(([], bqm.variables), bqm.vartype, energy=[])

    def close(self) -> None:
        """Close the Ocean client this solver created (its threads); a later solve reconnects.

        An injected sampler belongs to the caller and is left open.
        """
        with self._lock:
            if self._sampler is not None and self._owns_sampler:
                closer = getattr(self._sampler, "close", None)
                if callable(closer):
                    closer()
                self._sampler = None
                self._owns_sampler = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DWaveSolver(_LeapSolver):
    """A D-Wave quantum annealer, through Ocean's ``EmbeddingComposite(DWaveSampler())``.

    Each BQM is minor-embedded into the QPU's working graph (minorminer), sampled, and
    unembedded; chains broken in a sample are resolved by majority vote. The QPU's own
    ``info["timing"]`` (microseconds; ``qpu_access_time`` is what Leap bills) is passed
    through untouched, and ``info["embedding_summary"]`` says how the embedding went.

    Configuration follows Ocean: with no ``token``/``solver``/... given, dwave-cloud-client
    reads them from the ``DWAVE_*`` environment variables and the config file written by
    ``dwave config create``. Nothing connects until the first :meth:`sample`; without a token
    that solve raises :class:`~qopt.exceptions.SolverUnavailableError` at once (through
    ``get_solver("dwave")`` the local fallback then solves).

    Args:
        num_reads: Samples (anneal-readout cycles) per solve.
        annealing_time: Microseconds per anneal; ``None`` uses the solver's default
            (20 µs on current Advantage systems). Checked against the solver's
            ``annealing_time_range`` once connected.
        chain_strength: Coupling that holds each chain of qubits together, a positive float or
            a callable ``f(bqm, embedding)`` (e.g. from :mod:`dwave.embedding.chain_strength`);
            ``None`` uses Ocean's default, ``uniform_torque_compensation``.
        solver: A QPU solver name, or an Ocean feature-based selection such as
            ``{"topology__type": "zephyr"}``; ``None`` lets Ocean choose (config file, env,
            else the available QPU with the most qubits).
        token: Leap API token; ``None`` reads it from the environment or config file.
        endpoint: SAPI endpoint URL; ``None`` uses the configured or default one.
        region: Leap region code such as ``"na-west-1"``; ``None`` uses the configured one.
        profile: Config-file profile; ``None`` uses ``DWAVE_PROFILE`` or the file's default.
        config_file: Config file path; ``None`` uses ``DWAVE_CONFIG_FILE`` or auto-detection.
        sampler: A structured child to embed into instead of a QPU, such as
            :class:`dwave.system.testing.MockDWaveSampler` for offline use. Unless it is a
            real ``DWaveSampler``, ``is_mock`` is ``True``: its timings are fake and solve
            records are not reportable.

    Attributes:
        remote: ``True`` unless a mock is injected: the work runs on D-Wave's hardware, so
            its energy is ``"not measured"``.
        is_mock: ``True`` when an injected child that is not a real QPU sampler is used.

    Raises:
        SolverConfigurationError: At construction, for an option out of range or of the
            wrong type, or connection options given together with ``sampler``.

    Reference: Choi, "Minor-embedding in adiabatic quantum computation: I. The parameter
    setting problem", Quantum Information Processing 7 (2008); Cai, Macready & Roy, "A practical
    heuristic for finding graph minors", arXiv:1406.2741 (2014) (minorminer).

    Examples:
        >>> import dimod
        >>> from dwave.system.testing import MockDWaveSampler
        >>> from qopt.solvers.dwave import DWaveSolver
        >>> solver = DWaveSolver(sampler=MockDWaveSampler(topology_type="pegasus"), num_reads=10)
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> sampleset = solver.sample(bqm)
        >>> float(sampleset.first.energy)
        -1.0
        >>> solver.is_mock, solver.remote
        (True, False)
        >>> 0.0 <= sampleset.info["embedding_summary"]["chain_break_fraction"] <= 1.0
        True
    """

    name = "dwave"
    what = "a D-Wave QPU solver"
    offline_parameters = (
        "num_reads",
        "annealing_time",
        "label",
        "chain_strength",
        "chain_break_method",
        "chain_break_fraction",
        "embedding_parameters",
        "return_embedding",
        "warnings",
    )

    def __init__(
        self,
        *,
        num_reads: int = 100,
        annealing_time: float | None = None,
        chain_strength: float | Callable[..., Any] | None = None,
        solver: str | Mapping[str, Any] | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        sampler: dimod.Sampler | None = None,
    ) -> None:
        owner = type(self).__name__
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.annealing_time = (
            None
            if annealing_time is None
            else check_float(annealing_time, "annealing_time", owner, low=0, low_inclusive=False)
        )
        self.chain_strength: float | Callable[..., Any] | None = chain_strength
        if chain_strength is not None and not callable(chain_strength):
            try:
                self.chain_strength = check_float(
                    chain_strength, "chain_strength", owner, low=0, low_inclusive=False
                )
            except SolverConfigurationError:
                raise SolverConfigurationError(
                    f"The 'chain_strength' parameter of {owner} must be a finite float in "
                    "(0, inf), a callable f(bqm, embedding), or None. "
                    f"Got {chain_strength!r} instead."
                ) from None
        super().__init__(
            solver=solver,
            token=token,
            endpoint=endpoint,
            region=region,
            profile=profile,
            config_file=config_file,
            sampler=sampler,
            defaults={
                "num_reads": self.num_reads,
                "annealing_time": self.annealing_time,
                "chain_strength": self.chain_strength,
                # Ocean returns the embedding only on request; qopt records its summary.
                "return_embedding": True,
            },
        )

    def _wrap_injected(self, sampler: dimod.Sampler) -> dimod.Sampler:
        try:
            dimod.child_structure_dfs(sampler)
        except (ValueError, TypeError, AttributeError):
            raise SolverConfigurationError(
                "The 'sampler' parameter of DWaveSolver must be a structured dimod sampler "
                "(one with nodelist/edgelist), such as dwave.system.testing.MockDWaveSampler(). "
                f"Got {type(sampler).__name__} instead."
            ) from None
        return EmbeddingComposite(sampler)

    def _is_real(self, sampler: dimod.Sampler) -> bool:
        return isinstance(sampler, DWaveSampler)

    def _connect_with(self, options: dict[str, Any]) -> dimod.Sampler:
        return EmbeddingComposite(DWaveSampler(**options))

    def _qpu_properties(self, composite: dimod.Sampler) -> dict[str, Any]:
        return dict(composite.properties.get("child_properties", {}))

    def _check_ranges(self, parameters: Mapping[str, Any], qpu: Mapping[str, Any]) -> None:
        # A value outside the QPU's range is the caller's error: raise, never fall back.
        solver_name = qpu.get("chip_id", "this QPU")
        for name, key, unit in (
            ("num_reads", "num_reads_range", ""),
            ("annealing_time", "annealing_time_range", " µs"),
        ):
            value, bounds = parameters.get(name), qpu.get(key)
            if value is None or not bounds:
                continue
            low, high = bounds
            if not low <= value <= high:
                raise SolverConfigurationError(
                    f"The '{name}' parameter of {type(self).__name__} must be in "
                    f"[{low:g}, {high:g}]{unit} on {solver_name}. Got {value!r} instead."
                )

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Embed ``bqm`` into the QPU graph, sample it, and unembed the samples.

        Args:
            bqm: The problem.
            **parameters: Any parameter of ``EmbeddingComposite(DWaveSampler())`` (see
                :attr:`parameters` once connected), overriding this solver's defaults.

        Returns:
            The samples, with the QPU's ``info["timing"]`` (µs), Ocean's
            ``info["embedding_context"]`` and qopt's ``info["embedding_summary"]``
            (``chain_break_fraction``: mean fraction of broken chains over all reads;
            ``num_qubits``, ``max_chain_length``, ``chain_strength``).

        Raises:
            SolverUnavailableError: No token is configured, or the QPU cannot be reached.
            SolverConfigurationError: An unknown parameter, or one outside the QPU's range.
            ProblemTooLargeError: The BQM cannot be embedded into the QPU's working graph.
        """
        owner = type(self).__name__
        check_bqm(bqm, owner, allow_empty=True)
        if bqm.num_variables == 0:
            return self._empty(bqm)
        composite = self._connect()
        self._check_parameters(parameters, composite)
        merged = {**self._defaults, **parameters}
        qpu = self._qpu_properties(composite)
        self._check_ranges(merged, qpu)
        num_qubits = len(qpu.get("qubits", ())) or None
        if num_qubits is not None and bqm.num_variables > num_qubits:
            raise self._too_large(bqm, qpu, "it has more variables than the QPU has qubits")
        try:
            embedded = composite.sample(bqm, **merged)
        except ValueError as error:
            if "no embedding found" in str(error):
                raise self._too_large(bqm, qpu, "minorminer found no embedding") from error
            raise
        except _REMOTE_ERRORS as error:
            raise self._unavailable(error) from error
        return dimod.SampleSet.from_future(embedded, self._finish)

    def _too_large(
        self, bqm: dimod.BinaryQuadraticModel, qpu: Mapping[str, Any], why: str
    ) -> ProblemTooLargeError:
        qubits = len(qpu.get("qubits", ()))
        couplers = len(qpu.get("couplers", ()))
        return ProblemTooLargeError(
            f"The BQM ({bqm.num_variables} variables, {bqm.num_interactions} interactions) "
            f"does not fit the QPU's working graph ({qubits} qubits, {couplers} couplers): "
            f"{why}. Use get_solver('dwave-hybrid'), which takes far larger problems, or "
            "decompose the problem into QPU-sized pieces."
        )

    def _finish(self, embedded: dimod.SampleSet) -> dimod.SampleSet:
        try:
            embedded.resolve()
        except _REMOTE_ERRORS as error:
            raise self._unavailable(error) from error
        embedded.info["embedding_summary"] = _embedding_summary(embedded)
        return embedded


def _embedding_summary(sampleset: dimod.SampleSet) -> dict[str, Any]:
    """Plain-number summary of Ocean's embedding output, for records and logs."""
    summary: dict[str, Any] = {"chain_break_fraction": None}
    record = sampleset.record
    if "chain_break_fraction" in record.dtype.names and len(record):
        weights = record.num_occurrences
        summary["chain_break_fraction"] = float(
            np.average(record.chain_break_fraction, weights=weights)
        )
    context = sampleset.info.get("embedding_context", {})
    embedding = context.get("embedding")
    if embedding is not None:
        chains = [len(chain) for chain in embedding.values()]
        summary["num_qubits"] = int(sum(chains))
        summary["max_chain_length"] = int(max(chains, default=0))
    strength = context.get("chain_strength")
    summary["chain_strength"] = float(strength) if isinstance(strength, int | float) else None
    return summary


class LeapHybridSolver(_LeapSolver):
    """D-Wave Leap's hybrid BQM solver, through Ocean's ``LeapHybridSampler``.

    The hybrid solver runs classical heuristics with QPU calls in Leap's cloud and takes far
    larger problems than the QPU (limit reported by the solver as
    ``maximum_number_of_variables``). Its ``qpu_access_time``, ``run_time`` and
    ``charge_time`` (µs) are copied into ``info["timing"]``. Configuration, the local token
    check and lazy connection are as for :class:`DWaveSolver`.

    Args:
        time_limit: Seconds the solver may run; ``None`` uses the minimum the solver accepts
            for the problem's size (checked against it once connected).
        solver: A hybrid solver name or an Ocean feature-based selection; ``None`` lets Ocean
            choose the latest hybrid BQM solver.
        token: Leap API token; ``None`` reads it from the environment or config file.
        endpoint: SAPI endpoint URL; ``None`` uses the configured or default one.
        region: Leap region code; ``None`` uses the configured one.
        profile: Config-file profile; ``None`` uses ``DWAVE_PROFILE`` or the file's default.
        config_file: Config file path; ``None`` uses ``DWAVE_CONFIG_FILE`` or auto-detection.
        sampler: An already built ``LeapHybridSampler`` (or a test double with its API) to use
            instead of building one; anything but a ``LeapHybridSampler`` sets ``is_mock``.

    Attributes:
        remote: ``True`` unless a test double is injected.
        is_mock: ``True`` when an injected sampler is not a ``LeapHybridSampler``.

    Raises:
        SolverConfigurationError: At construction, for an option out of range or of the
            wrong type, or connection options given together with ``sampler``.

    Examples:
        >>> from qopt.solvers.dwave import LeapHybridSolver
        >>> solver = LeapHybridSolver(time_limit=5)   # nothing connects yet
        >>> solver.remote, solver.connected, solver.time_limit
        (True, False, 5.0)
    """

    name = "dwave-hybrid"
    what = "a Leap hybrid BQM solver"
    offline_parameters = ("time_limit", "label")

    def __init__(
        self,
        *,
        time_limit: float | None = None,
        solver: str | Mapping[str, Any] | None = None,
        token: str | None = None,
        endpoint: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        sampler: dimod.Sampler | None = None,
    ) -> None:
        owner = type(self).__name__
        self.time_limit = (
            None
            if time_limit is None
            else check_float(time_limit, "time_limit", owner, low=0, low_inclusive=False)
        )
        super().__init__(
            solver=solver,
            token=token,
            endpoint=endpoint,
            region=region,
            profile=profile,
            config_file=config_file,
            sampler=sampler,
            defaults={"time_limit": self.time_limit},
        )

    def _wrap_injected(self, sampler: dimod.Sampler) -> dimod.Sampler:
        if not isinstance(sampler, dimod.Sampler) or not callable(
            getattr(sampler, "min_time_limit", None)
        ):
            raise SolverConfigurationError(
                "The 'sampler' parameter of LeapHybridSolver must be a LeapHybridSampler or a "
                "dimod sampler with its min_time_limit(bqm) method. "
                f"Got {type(sampler).__name__} instead."
            )
        return sampler

    def _is_real(self, sampler: dimod.Sampler) -> bool:
        return isinstance(sampler, LeapHybridSampler)

    def _connect_with(self, options: dict[str, Any]) -> dimod.Sampler:
        return LeapHybridSampler(**options)

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Send ``bqm`` to the Leap hybrid solver and wait for its samples.

        Args:
            bqm: The problem.
            **parameters: Any parameter of the hybrid solver (see :attr:`parameters` once
                connected), overriding this solver's defaults.

        Returns:
            The samples; ``info["timing"]`` holds the solver's times in microseconds.

        Raises:
            SolverUnavailableError: No token is configured, or Leap cannot be reached.
            SolverConfigurationError: An unknown parameter, or ``time_limit`` below the
                solver's minimum for this problem size.
            ProblemTooLargeError: The BQM exceeds the solver's maximum number of variables.
        """
        owner = type(self).__name__
        check_bqm(bqm, owner, allow_empty=True)
        if bqm.num_variables == 0:
            return self._empty(bqm)
        sampler = self._connect()
        self._check_parameters(parameters, sampler)
        merged = {**self._defaults, **parameters}
        limit = sampler.properties.get("maximum_number_of_variables")
        if limit is not None and bqm.num_variables > limit:
            raise ProblemTooLargeError(
                f"The BQM has {bqm.num_variables} variables; the Leap hybrid solver takes at "
                f"most {limit}. Decompose the problem, or reduce it before solving."
            )
        try:
            minimum = float(sampler.min_time_limit(bqm))  # type: ignore[attr-defined]
        except _REMOTE_ERRORS as error:
            raise self._unavailable(error) from error
        time_limit = merged.get("time_limit")
        if time_limit is not None and time_limit < minimum:
            raise SolverConfigurationError(
                f"The 'time_limit' parameter of {owner} must be at least {minimum:g} s for a "
                f"BQM of {bqm.num_variables} variables on this solver. Got {time_limit!r} "
                "instead."
            )
        try:
            sampleset = sampler.sample(bqm, **merged)
            sampleset.resolve()
        except _REMOTE_ERRORS as error:
            raise self._unavailable(error) from error
        timing = dict(sampleset.info.get("timing", {}))
        for key in ("qpu_access_time", "run_time", "charge_time"):
            if key in sampleset.info:
                timing[key] = sampleset.info[key]
        sampleset.info["timing"] = timing
        return sampleset
