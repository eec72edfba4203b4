"""Time and energy of every solve, with the provenance of each number.

A :class:`Meter` brackets a piece of work and reads wall-clock time, process CPU time and
energy. Energy is ``"measured"`` only when read from a hardware counter (NVML for a GPU, RAPL
for a CPU package); otherwise it is ``"estimated"`` and the record names the model and its
inputs. Remote QPUs report ``"not measured"`` unless the vendor reports energy.

Examples:
    >>> from qopt.metering import Meter
    >>> with Meter() as meter:
    ...     _ = sum(range(10_000))
    >>> meter.reading.wall_s > 0 and meter.reading.energy.provenance in ("measured", "estimated")
    True
"""

from __future__ import annotations

import glob
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import dimod

from qopt.exceptions import NoSolveRecordError, NotReadyError, SolverConfigurationError

__all__ = [
    "DEFAULT_CPU_WATTS_PER_CORE",
    "EnergyReading",
    "Meter",
    "MeterReading",
    "SolveRecord",
    "record_of",
    "total_record",
]

Provenance = Literal["measured", "estimated", "not measured"]

#: Power drawn by one fully busy CPU core, for the estimate when no RAPL counter is readable.
#: A server core under load draws roughly 5-15 W (package TDP / cores); 10 W is the middle.
#: Override with the environment variable ``QOPT_CPU_WATTS_PER_CORE``.
DEFAULT_CPU_WATTS_PER_CORE = 10.0

_RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*/energy_uj"


@dataclass(frozen=True)
class EnergyReading:
    """Joules spent by a piece of work, and how that number was obtained.

    Attributes:
        joules: The energy, or ``None`` when ``provenance`` is ``"not measured"``.
        provenance: ``"measured"`` (hardware counter), ``"estimated"`` (a model) or
            ``"not measured"``.
        method: The counter read, or the model and its inputs.
    """

    joules: float | None
    provenance: Provenance
    method: str


@dataclass(frozen=True)
class MeterReading:
    """What a :class:`Meter` read over one block of work."""

    wall_s: float
    cpu_s: float
    energy: EnergyReading


def _cpu_watts_per_core() -> float:
    raw = os.environ.get("QOPT_CPU_WATTS_PER_CORE")
    if raw is None:
        return DEFAULT_CPU_WATTS_PER_CORE
    try:
        watts = float(raw)
    except ValueError:
        watts = -1.0
    if not 0 < watts < math.inf:
        raise SolverConfigurationError(
            f"The QOPT_CPU_WATTS_PER_CORE environment variable must be a positive, finite "
            f"number of watts. Got {raw!r} instead; unset it for the default "
            f"{DEFAULT_CPU_WATTS_PER_CORE:g} W."
        )
    return watts


def _read_rapl_uj() -> list[int] | None:
    """Package energy counters in microjoules, or None where RAPL is absent or unreadable."""
    values = []
    for path in sorted(glob.glob(_RAPL_GLOB)):
        try:
            with open(path) as handle:
                values.append(int(handle.read().strip()))
        except (OSError, ValueError):
            return None
    return values or None


class _NvmlCounter:
    """Total-energy counter of one NVIDIA GPU, through NVML (package nvidia-ml-py)."""

    def __init__(self, index: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.name = f"NVML total energy counter, GPU {index}"

    def read_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))


def _open_nvml(device: str) -> _NvmlCounter | None:
    if not device.startswith("cuda"):
        return None
    index = int(device.split(":", 1)[1]) if ":" in device else 0
    try:
        counter = _NvmlCounter(index)
        counter.read_mj()
    except Exception:  # no pynvml, no driver, or a GPU without the counter
        return None
    return counter


def _cpu_estimate(cpu: float) -> EnergyReading:
    watts = _cpu_watts_per_core()
    return EnergyReading(
        cpu * watts,
        "estimated",
        f"CPU time {cpu:.4g} s x {watts:g} W per busy core "
        "(model: QOPT_CPU_WATTS_PER_CORE; no RAPL counter readable)",
    )


class Meter:
    """Context manager that measures wall time, CPU time and energy of the enclosed work.

    Args:
        device: ``"cpu"`` or a torch-style ``"cuda[:N]"`` for work that runs on a GPU.
        remote: ``True`` for work done on a remote machine (a QPU, a cloud solver): its energy
            is ``"not measured"`` because no counter of ours sees it.

    Examples:
        >>> with Meter() as meter:
        ...     pass
        >>> meter.reading.energy.provenance in ("measured", "estimated")
        True
    """

    def __init__(self, device: str = "cpu", *, remote: bool = False) -> None:
        self.device = device
        self.remote = remote
        self._reading: MeterReading | None = None

    def __enter__(self) -> Meter:
        self._nvml = None if self.remote else _open_nvml(self.device)
        self._rapl0 = None if (self.remote or self._nvml) else _read_rapl_uj()
        self._nvml0 = self._nvml.read_mj() if self._nvml else 0
        self._cpu0 = time.process_time()
        self._wall0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall0
        cpu = time.process_time() - self._cpu0
        self._reading = MeterReading(wall_s=wall, cpu_s=cpu, energy=self._energy(wall, cpu))

    def _energy(self, wall: float, cpu: float) -> EnergyReading:
        if self.remote:
            return EnergyReading(
                None, "not measured", "remote hardware; the vendor reports no energy"
            )
        if self._nvml is not None:
            joules = (self._nvml.read_mj() - self._nvml0) / 1e3
            return EnergyReading(joules, "measured", self._nvml.name + " (whole GPU)")
        if self._rapl0 is not None:
            rapl1 = _read_rapl_uj()
            if rapl1 is not None and len(rapl1) == len(self._rapl0):
                # Counters wrap; a negative difference means one did during the block.
                delta = sum(b - a for a, b in zip(self._rapl0, rapl1, strict=True) if b >= a)
                return EnergyReading(
                    delta / 1e6, "measured", "RAPL package counters (whole socket)"
                )
        return _cpu_estimate(cpu)

    @property
    def reading(self) -> MeterReading:
        """The measurement; available once the ``with`` block has ended."""
        if self._reading is None:
            raise NotReadyError("Meter.reading is available after the 'with' block ends.")
        return self._reading


@dataclass
class SolveRecord:
    """The measured facts of one solve, stored in ``SampleSet.info["qopt"]``.

    Attributes:
        solver: The registry name of the solver that was asked for.
        solved_by: The solver that produced the samples (differs after a fallback).
        num_variables: Variables in the BQM.
        wall_s: Wall-clock seconds of the whole solve, qopt's own work included.
        cpu_s: CPU seconds of this process over the solve (all threads).
        qpu_access_s: QPU access time reported by the backend, when it reports one.
        energy_j: Joules, or ``None`` when not measured.
        energy_provenance: ``"measured"``, ``"estimated"`` or ``"not measured"``.
        energy_method: The counter read, or the model and its inputs.
        fallback: Why the requested solver failed and a fallback solved instead, or ``None``.
        mock: ``True`` when a mock backend produced the samples: its timings are fake and
            :meth:`reportable` is ``False``.
        timing: The backend's own timing keys (dwave-samplers' ``*_ns``, QPU ``*_time``).
    """

    solver: str
    solved_by: str
    num_variables: int
    wall_s: float
    cpu_s: float
    qpu_access_s: float | None
    energy_j: float | None
    energy_provenance: Provenance
    energy_method: str
    fallback: str | None = None
    mock: bool = False
    timing: dict[str, Any] = field(default_factory=dict)

    @property
    def reportable(self) -> bool:
        """Whether the times and joules may be reported as results (never for mocks)."""
        return not self.mock

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SolveRecord:
        """Rebuild a record from :meth:`to_dict` output."""
        return cls(**data)


def record_of(sampleset: dimod.SampleSet) -> SolveRecord:
    """The :class:`SolveRecord` attached to a sample set by a metered solver.

    Raises:
        NoSolveRecordError: The sample set did not come from a metered qopt solver (a
            ``KeyError``).
    """
    try:
        data = sampleset.info["qopt"]
    except KeyError:
        raise NoSolveRecordError(
            "This SampleSet carries no qopt solve record; get the solver with "
            "qopt.solvers.get_solver(name), which meters every solve."
        ) from None
    return data if isinstance(data, SolveRecord) else SolveRecord.from_dict(data)


def total_record(records: Sequence[SolveRecord]) -> SolveRecord:
    """One record for several solves of one problem (rounds of an anytime solve).

    Times, QPU access and joules are summed, and the energy's method describes the sum: an
    estimate is restated from the total CPU time, so the method never quotes one round's. The
    solver, fallback and mock flag are the last solve's; backend timing keys are not summed.

    Raises:
        NoSolveRecordError: ``records`` is empty.

    Examples:
        >>> from qopt.metering import SolveRecord, total_record
        >>> rounds = [
        ...     SolveRecord("sa", "sa", 3, 1.0, 0.5, None, 5.0, "estimated", "CPU time 0.5 s ..."),
        ...     SolveRecord("sa", "sa", 3, 1.0, 1.5, None, 15.0, "estimated", "CPU time 1.5 s ..."),
        ... ]
        >>> total = total_record(rounds)
        >>> total.cpu_s, total.energy_method.split(" x ")[0]
        (2.0, 'CPU time 2 s')
    """
    if not records:
        raise NoSolveRecordError("total_record needs at least one solve record.")
    if len(records) == 1:
        return records[0]
    last = records[-1]
    cpu = sum(r.cpu_s for r in records)
    qpu = [r.qpu_access_s for r in records if r.qpu_access_s is not None]
    provenances = {r.energy_provenance for r in records}
    energy: EnergyReading
    if "not measured" in provenances:
        energy = EnergyReading(
            None,
            "not measured",
            next(r.energy_method for r in records if r.energy_provenance == "not measured"),
        )
    elif provenances == {"estimated"}:
        energy = _cpu_estimate(cpu)
    else:
        joules = sum(r.energy_j or 0.0 for r in records)
        methods = sorted({r.energy_method for r in records})
        provenance: Provenance = "measured" if provenances == {"measured"} else "estimated"
        energy = EnergyReading(
            joules, provenance, f"sum over {len(records)} solves of: " + "; ".join(methods)
        )
    return SolveRecord(
        solver=last.solver,
        solved_by=last.solved_by,
        num_variables=last.num_variables,
        wall_s=sum(r.wall_s for r in records),
        cpu_s=cpu,
        qpu_access_s=sum(qpu) if qpu else None,
        energy_j=energy.joules,
        energy_provenance=energy.provenance,
        energy_method=energy.method,
        fallback=last.fallback,
        mock=any(r.mock for r in records),
    )
