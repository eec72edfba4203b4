"""The energy break-even of a quantum head: simulating its training step here, or a QPU.

Simulating a circuit of ``n`` qubits exactly costs time and energy that grow as ``2^n``; a
QPU runs it in a time set by its shots, shot rate and per-job overhead, with a power draw
that hardly depends on ``n``. Somewhere the curves cross. This module finds where, for the
head's own training step on the machine at hand:

1. :func:`measure_training_step` times one training step of a
   :class:`~qopt.circuits.head.QuantumHead` (forward, backward, Adam) at each qubit count,
   metered by :class:`qopt.metering.Meter` (joules measured from NVML or RAPL where
   readable, otherwise estimated, with the model named);
2. :func:`fit_growth` fits ``log(joules) = a + b n`` (``scipy.stats.linregress``) over the
   larger qubit counts, where the ``2^n`` work dominates the fixed overheads;
3. :class:`QPUEnergyModel` is the *modelled* energy of the same step on a QPU: wall-plug
   power x (jobs x per-job overhead + circuits x shots x time per shot), with the circuits
   of a parameter-shift step (``QuantumHead.circuits_per_step``, linear in ``n``). Every
   input is the caller's: no vendor publishes a figure qopt could cite for all of them;
4. :func:`break_even` intersects the two, and evaluates the crossing at every low/high
   corner of the inputs' uncertainty for its range; with a
   :class:`ClassicalReference` it sets both against the best classical head of the same
   quality.

Examples:
    >>> cost = StepCost(qubits=(10, 12, 14), wall_s=(1e-3, 4e-3, 1.6e-2),
    ...                 joules=(1e-2, 4e-2, 1.6e-1), provenance="estimated",
    ...                 method="synthetic", device="cpu", batch=32, layers=2)
    >>> qpu = QPUEnergyModel(system_watts=1e4, shot_seconds=1e-3,
    ...                      job_overhead_seconds=1.0, shots=100)
    >>> result = break_even(cost, qpu)
    >>> round(result.fit.factor_per_qubit, 6)  # the synthetic joules double per qubit
    2.0
    >>> 14 < result.qubits < 60
    True
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import brentq
from scipy.stats import linregress

from qopt._optional import import_optional
from qopt._validation import check_float, check_int
from qopt.circuits.head import QuantumHead
from qopt.circuits.statevector import cpu_threads, default_threads
from qopt.circuits.training import HeadFitRecord, fit_head
from qopt.exceptions import InvalidInputError, SolverConfigurationError
from qopt.metering import Meter

__all__ = [
    "BreakEven",
    "ClassicalReference",
    "GrowthFit",
    "QPUEnergyModel",
    "StepCost",
    "break_even",
    "check_uncertainty",
    "classical_reference",
    "fit_growth",
    "measure_training_step",
]

#: The QPU model's inputs, by name, as ``uncertainty=`` takes them.
QPU_INPUTS = ("system_watts", "shot_seconds", "job_overhead_seconds", "shots")

#: The largest qubit count the crossing is searched up to.
_SEARCH_LIMIT = 200.0


@dataclass(frozen=True)
class QPUEnergyModel:
    """Modelled energy of one training step of the head on a QPU.

    ``joules = system_watts x (jobs x job_overhead_seconds + circuits x shots x
    shot_seconds)``: the whole system's wall-plug power (cryostat or lasers, control
    electronics, servers) for as long as the step keeps it busy. A figure from this model
    is ``"modelled"``, never measured; every input is stated and yours to change.

    Args:
        system_watts: Wall-plug power of the whole QPU system, in watts.
        shot_seconds: Seconds per shot of one circuit (gates, readout, reset or cooling).
        job_overhead_seconds: Seconds of QPU time per job beyond its shots (loading,
            compiling the parameter sets, calibration checks).
        shots: Measurements per circuit.

    Raises:
        SolverConfigurationError: An input is not a finite positive number (the overhead
            and shot time may be 0).
    """

    system_watts: float
    shot_seconds: float
    job_overhead_seconds: float
    shots: int = 1000

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_float(self.system_watts, "system_watts", owner, low=0.0, low_inclusive=False)
        check_float(self.shot_seconds, "shot_seconds", owner, low=0.0)
        check_float(self.job_overhead_seconds, "job_overhead_seconds", owner, low=0.0)
        check_int(self.shots, "shots", owner, low=1)
        if self.shot_seconds == 0 and self.job_overhead_seconds == 0:
            raise SolverConfigurationError(
                f"{owner} needs shot_seconds or job_overhead_seconds above 0: a QPU that takes "
                "no time uses no energy."
            )

    def step_seconds(self, circuits: float, jobs: int = 1) -> float:
        """QPU seconds of a step of ``circuits`` circuits sent as ``jobs`` jobs."""
        return jobs * self.job_overhead_seconds + circuits * self.shots * self.shot_seconds

    def step_joules(self, circuits: float, jobs: int = 1) -> float:
        """Modelled joules of that step."""
        return self.system_watts * self.step_seconds(circuits, jobs)

    def describe(self) -> str:
        """The model with its inputs, for a table."""
        return (
            f"modelled: {self.system_watts:g} W x (1 job x {self.job_overhead_seconds:g} s + "
            f"circuits x {self.shots} shots x {self.shot_seconds:g} s)"
        )


@dataclass(frozen=True)
class StepCost:
    """Seconds and joules of one simulated training step at each qubit count.

    Attributes:
        qubits: The qubit counts measured, increasing.
        wall_s: Wall seconds of one step at each.
        joules: Joules of one step at each.
        provenance: ``"measured"`` (NVML, RAPL) or ``"estimated"``.
        method: The counter read, or the estimate's model.
        device: Where the steps ran.
        batch: Examples per step.
        layers: Ansatz layers of the head.
    """

    qubits: tuple[int, ...]
    wall_s: tuple[float, ...]
    joules: tuple[float, ...]
    provenance: str
    method: str
    device: str
    batch: int
    layers: int


def measure_training_step(
    qubits: Iterable[int],
    *,
    batch: int = 32,
    layers: int = 2,
    features: int = 16,
    repeats: int = 3,
    device: str = "cpu",
    seed: int = 0,
) -> StepCost:
    """Time and meter one training step of a :class:`QuantumHead` at each qubit count.

    A step is what :func:`~qopt.circuits.training.fit_head` does per mini-batch: forward,
    cross-entropy, backward (``gradient="backprop"``, the fastest on a simulator), Adam.
    After one warm-up step, ``repeats`` steps run under one :class:`~qopt.metering.Meter`
    and the reading is divided by ``repeats``. Threads as ``fit_head`` sets them.

    Raises:
        SolverConfigurationError: An argument is out of range.
        ProblemTooLargeError: A qubit count does not fit in memory at this batch.
    """
    owner = "measure_training_step"
    counts = sorted({check_int(n, "qubits", owner, low=1, high=40) for n in qubits})
    if len(counts) < 2:
        raise SolverConfigurationError(
            f"{owner} needs at least two qubit counts to fit a growth. Got {counts}."
        )
    batch = check_int(batch, "batch", owner, low=1)
    repeats = check_int(repeats, "repeats", owner, low=1)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, features, generator=generator).to(device)
    y = torch.randint(0, 2, (batch,), generator=generator).to(device)
    walls, joules, provenance, method = [], [], "", ""
    for n in counts:
        head = QuantumHead(features, 2, num_qubits=n, layers=layers, seed=seed).to(device)
        optimizer = torch.optim.Adam(head.parameters(), lr=0.01)

        def step(head: QuantumHead = head, optimizer: torch.optim.Optimizer = optimizer) -> None:
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(head(x), y).backward()
            optimizer.step()

        with cpu_threads(default_threads(n, device)):
            step()
            if device.startswith("cuda"):
                torch.cuda.synchronize(device)
            with Meter(device) as meter:
                for _ in range(repeats):
                    step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize(device)
        reading = meter.reading
        walls.append(reading.wall_s / repeats)
        joules.append((reading.energy.joules or 0.0) / repeats)
        provenance, method = reading.energy.provenance, reading.energy.method
    return StepCost(
        qubits=tuple(counts),
        wall_s=tuple(walls),
        joules=tuple(joules),
        provenance=provenance,
        method=method,
        device=str(device),
        batch=batch,
        layers=layers,
    )


@dataclass(frozen=True)
class GrowthFit:
    """``log(joules) = intercept + slope x n``, fitted over ``n >= from_qubits``.

    Attributes:
        slope: Natural-log growth per qubit (``log 2 = 0.693`` for a doubling).
        intercept: The fit's value at ``n = 0``.
        r_squared: Coefficient of determination of the fit.
        from_qubits: The smallest qubit count fitted.
        points: Qubit counts fitted.
    """

    slope: float
    intercept: float
    r_squared: float
    from_qubits: int
    points: int

    @property
    def factor_per_qubit(self) -> float:
        """How many times the joules grow per added qubit."""
        return math.exp(self.slope)

    def joules(self, qubits: float) -> float:
        """The fitted joules at ``qubits`` (extrapolated outside the measured range)."""
        return math.exp(self.intercept + self.slope * qubits)


def fit_growth(
    qubits: Sequence[int], joules: Sequence[float], *, from_qubits: int | None = None
) -> GrowthFit:
    """Fit exponential growth to joules per step: a line through ``(n, log joules)``.

    Args:
        qubits: Qubit counts.
        joules: Joules per step at each (positive).
        from_qubits: Fit only counts from this one up; ``None``: the upper half of the
            counts (at least two), where ``2^n`` work dominates fixed per-step costs.

    Raises:
        InvalidInputError: Lengths differ, a joule figure is not positive and finite, or
            fewer than two points are left to fit.
    """
    n = np.asarray(qubits, dtype=float)
    j = np.asarray(joules, dtype=float)
    if n.shape != j.shape or n.ndim != 1:
        raise InvalidInputError(
            f"fit_growth needs one joule figure per qubit count: got {n.shape} and {j.shape}."
        )
    if not np.all(np.isfinite(j)) or np.any(j <= 0):
        raise InvalidInputError(
            "fit_growth needs positive, finite joules; a zero means the meter read nothing "
            "(measure more repeats per step)."
        )
    order = np.argsort(n)
    n, j = n[order], j[order]
    if from_qubits is None:
        keep = np.arange(len(n)) >= len(n) - max(2, math.ceil(len(n) / 2))
    else:
        keep = n >= from_qubits
    if keep.sum() < 2:
        raise InvalidInputError(
            f"fit_growth has {int(keep.sum())} point(s) from {from_qubits} qubits up; it needs "
            "two. Measure more qubit counts or lower from_qubits."
        )
    line = linregress(n[keep], np.log(j[keep]))
    return GrowthFit(
        slope=float(line.slope),
        intercept=float(line.intercept),
        r_squared=float(line.rvalue**2) if keep.sum() > 2 else 1.0,
        from_qubits=int(n[keep][0]),
        points=int(keep.sum()),
    )


@dataclass(frozen=True)
class ClassicalReference:
    """The best classical head on a task, and the quantum head fitted on the same split.

    Attributes:
        name: The classical head (``"logistic regression"``).
        accuracy: Its held-out accuracy.
        wall_s: Wall seconds of its whole fit.
        joules: Energy of its whole fit.
        provenance: ``"measured"`` or ``"estimated"`` (with ``method``).
        method: The counter read, or the estimate's model.
        quantum: The quantum head's :class:`~qopt.circuits.training.HeadFitRecord`.
        quantum_steps: Training steps the quantum head's fit took.
    """

    name: str
    accuracy: float
    wall_s: float
    joules: float
    provenance: str
    method: str
    quantum: HeadFitRecord
    quantum_steps: int

    @property
    def quantum_accuracy(self) -> float:
        """The quantum head's held-out accuracy."""
        return float(self.quantum.validation_accuracy or 0.0)


def classical_reference(
    seed: int = 0, *, qubits: int = 4, layers: int = 2, epochs: int = 20
) -> ClassicalReference:
    """Logistic regression against a ``qubits``-qubit head on breast cancer (scikit-learn).

    The same stratified split (398 examples to fit, 171 held out, drawn by ``seed``),
    features standardized on the training part; both fits metered with
    :class:`qopt.metering.Meter`. Needs scikit-learn (``pip install 'qopt-loop[plot]'``).

    Raises:
        MissingDependencyError: scikit-learn is not installed.
    """
    import_optional("sklearn", "plot", "The classical reference (scikit-learn)")
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, stratify=data.target, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)
    model = LogisticRegression(max_iter=1000)
    with Meter() as meter:
        model.fit(x_train, y_train)
    batch = 64
    _, record = fit_head(
        x_train,
        y_train,
        validation=(x_test, y_test),
        num_qubits=qubits,
        layers=layers,
        epochs=epochs,
        batch_size=batch,
        seed=seed,
    )
    energy = meter.reading.energy
    return ClassicalReference(
        name="logistic regression",
        accuracy=float(model.score(x_test, y_test)),
        wall_s=meter.reading.wall_s,
        joules=energy.joules or 0.0,
        provenance=energy.provenance,
        method=energy.method,
        quantum=record,
        quantum_steps=epochs * math.ceil(len(y_train) / batch),
    )


@dataclass(frozen=True)
class BreakEven:
    """Where simulating the head's training step here costs as much energy as a QPU.

    Attributes:
        cost: The measured simulation cost per step.
        fit: Its exponential fit.
        qpu: The QPU energy model at its nominal inputs.
        circuits: ``(c0, c1)``: a step runs ``c0 + c1 x n`` circuits on hardware.
        qubits: The break-even qubit count at the nominal inputs (``None``: no crossing
            below 200 qubits, e.g. a fit that does not grow).
        low: The smallest break-even over every low/high corner of ``uncertainty``.
        high: The largest (``None`` if some corner never crosses).
        uncertainty: The ``(low, high)`` of each input varied.
        classical: The best classical head of the same task, when given.
    """

    cost: StepCost
    fit: GrowthFit
    qpu: QPUEnergyModel
    circuits: tuple[int, int]
    qubits: float | None
    low: float | None
    high: float | None
    uncertainty: dict[str, tuple[float, float]] = field(default_factory=dict)
    classical: ClassicalReference | None = None

    def circuits_at(self, qubits: float) -> float:
        """Hardware circuits of one step at ``qubits``."""
        return self.circuits[0] + self.circuits[1] * qubits

    def simulation_joules(self, qubits: float) -> float:
        """Fitted joules of one simulated step."""
        return self.fit.joules(qubits)

    def qpu_joules(self, qubits: float) -> float:
        """Modelled joules of one step on the QPU."""
        return self.qpu.step_joules(self.circuits_at(qubits))

    def table(self) -> str:
        """The measurements, the fit, the model and the break-even, as text."""
        c = self.cost
        lines = [
            f"simulated training step (batch {c.batch}, {c.layers} layers, backprop) on {c.device}; "
            f"energy {c.provenance}: {c.method}",
            f"  {'qubits':>6} {'seconds':>10} {'joules':>11} {'QPU joules (modelled)':>22}",
        ]
        for n, s, j in zip(c.qubits, c.wall_s, c.joules, strict=True):
            lines.append(f"  {n:>6} {s:>10.3g} {j:>11.3g} {self.qpu_joules(n):>22.3g}")
        f = self.fit
        lines.append(
            f"fit: log J = {f.intercept:.3f} + {f.slope:.4f} n over n >= {f.from_qubits} "
            f"({f.points} points, R^2 {f.r_squared:.3f}): x{f.factor_per_qubit:.3f} per qubit "
            "(a statevector doubles: x2)"
        )
        lines.append(
            f"QPU: {self.qpu.describe()}; circuits per step = {self.circuits[0]} + "
            f"{self.circuits[1]} n (parameter shift)"
        )
        where = "none below 200 qubits" if self.qubits is None else f"{self.qubits:.1f} qubits"
        span = ", ".join(f"{k} {lo:g}..{hi:g}" for k, (lo, hi) in self.uncertainty.items())
        lines.append(f"break-even: {where}")
        if self.uncertainty:
            low = "none" if self.low is None else f"{self.low:.1f}"
            high = "none below 200" if self.high is None else f"{self.high:.1f}"
            lines.append(f"  range over the inputs' uncertainty ({span}): {low} .. {high} qubits")
        if self.classical is not None:
            r = self.classical
            at = self.qubits if self.qubits is not None else float(c.qubits[-1])
            lines.append(
                f"best classical head: {r.name}, accuracy {r.accuracy:.3f}, {r.joules:.3g} J per "
                f"whole fit ({r.provenance}); the quantum head reached {r.quantum_accuracy:.3f} "
                f"in {r.quantum_steps} steps"
            )
            lines.append(
                f"  a quantum fit of {r.quantum_steps} steps: {r.quantum_steps * c.joules[0]:.3g} J "
                f"simulated at {c.qubits[0]} qubits, {r.quantum_steps * self.qpu_joules(at):.3g} J "
                f"on the QPU at {at:.1f} qubits (modelled): "
                f"{r.quantum_steps * self.qpu_joules(at) / max(r.joules, 1e-300):.3g}x the classical head"
            )
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Qubits against joules per step: the measured points, the fitted simulation
        curve, the QPU model and the crossing; written to ``path`` (needs matplotlib)."""
        import_optional("matplotlib", "plot", "The break-even plot")
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        top = max(self.cost.qubits[-1], self.high or self.qubits or 0) + 4
        grid = np.linspace(self.cost.qubits[0], top, 200)
        figure, axes = plt.subplots(figsize=(6, 4))
        axes.semilogy(
            self.cost.qubits, self.cost.joules, "o", label=f"simulated ({self.cost.provenance})"
        )
        axes.semilogy(grid, [self.simulation_joules(n) for n in grid], "-", label="simulation fit")
        axes.semilogy(grid, [self.qpu_joules(n) for n in grid], "--", label="QPU (modelled)")
        if self.qubits is not None:
            axes.axvline(self.qubits, color="grey", lw=0.8)
            if self.low is not None and self.high is not None:
                axes.axvspan(self.low, self.high, color="grey", alpha=0.15, label="range")
        axes.set_xlabel("qubits")
        axes.set_ylabel("joules per training step")
        axes.legend()
        figure.tight_layout()
        out = Path(path)
        figure.savefig(out)
        plt.close(figure)
        return out


def _crossing(fit: GrowthFit, qpu: QPUEnergyModel, circuits: tuple[int, int]) -> float | None:
    def gap(n: float) -> float:
        return (
            fit.intercept + fit.slope * n - math.log(qpu.step_joules(circuits[0] + circuits[1] * n))
        )

    low = 1.0
    if gap(low) >= 0:
        return low  # the simulation costs more already at one qubit
    if fit.slope <= 0 or gap(_SEARCH_LIMIT) < 0:
        return None
    return float(brentq(gap, low, _SEARCH_LIMIT, xtol=1e-10))


def check_uncertainty(
    uncertainty: Mapping[str, tuple[float, float]] | None,
) -> dict[str, tuple[float, float]]:
    """``uncertainty`` as :func:`break_even` takes it, checked: QPU input names, and
    ``(low, high)`` pairs with ``low <= high``.

    Raises:
        SolverConfigurationError: An unknown input, or a range whose low is above its high.
    """
    uncertainty = dict(uncertainty or {})
    for name, bounds in uncertainty.items():
        if name not in QPU_INPUTS:
            raise SolverConfigurationError(
                f"break_even got uncertainty for {name!r}; the QPU model's inputs are "
                f"{', '.join(QPU_INPUTS)}."
            )
        if len(bounds) != 2 or not bounds[0] <= bounds[1]:
            raise SolverConfigurationError(
                f"break_even needs uncertainty[{name!r}] as (low, high) with low <= high. "
                f"Got {bounds!r}."
            )
    return uncertainty


def break_even(
    cost: StepCost,
    qpu: QPUEnergyModel,
    *,
    uncertainty: Mapping[str, tuple[float, float]] | None = None,
    from_qubits: int | None = None,
    classical: ClassicalReference | None = None,
) -> BreakEven:
    """Intersect the measured simulation cost with the QPU energy model.

    Args:
        cost: From :func:`measure_training_step` (or your own measurements).
        qpu: The QPU model at its nominal inputs.
        uncertainty: ``{input: (low, high)}`` for any of ``system_watts``,
            ``shot_seconds``, ``job_overhead_seconds``, ``shots``; the break-even is found
            at every corner of these ranges for its low and high.
        from_qubits: Passed to :func:`fit_growth`.
        classical: The best classical head of the same task (:func:`classical_reference`).

    Raises:
        SolverConfigurationError: An unknown input in ``uncertainty``, or a range whose low
            is above its high.
    """
    uncertainty = check_uncertainty(uncertainty)
    fit = fit_growth(cost.qubits, cost.joules, from_qubits=from_qubits)
    one = QuantumHead(1, 2, num_qubits=1, layers=cost.layers).circuits_per_step(cost.batch)
    two = QuantumHead(1, 2, num_qubits=2, layers=cost.layers).circuits_per_step(cost.batch)
    circuits = (one - (two - one), two - one)
    nominal = _crossing(fit, qpu, circuits)
    corners = []
    for values in itertools.product(*uncertainty.values()):
        changes: dict[str, Any] = {
            name: (int(v) if name == "shots" else float(v))
            for name, v in zip(uncertainty, values, strict=True)
        }
        corners.append(_crossing(fit, replace(qpu, **changes), circuits))
    crossed = [c for c in corners if c is not None]
    return BreakEven(
        cost=cost,
        fit=fit,
        qpu=qpu,
        circuits=circuits,
        qubits=nominal,
        low=min(crossed) if crossed else None,
        high=max(crossed) if crossed and len(crossed) == len(corners) else None,
        uncertainty=uncertainty,
        classical=classical,
    )
