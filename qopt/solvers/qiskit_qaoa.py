"""QAOA through qiskit-optimization, on a local Qiskit simulator or IBM Quantum hardware.

:class:`QiskitQAOASolver` is the ``qaoa-qiskit`` backend: it translates a BQM into a
qiskit-optimization :class:`~qiskit_optimization.QuadraticProgram`, solves it with
``MinimumEigenOptimizer(QAOA(...))`` on Qiskit V2 primitives (``StatevectorSampler`` locally,
qiskit-ibm-runtime's ``SamplerV2`` on a backend) and returns every distinct measured bitstring
as a :class:`dimod.SampleSet`. :func:`ibm_status` (from :mod:`qopt.solvers.accounts`) says,
offline, whether an IBM Quantum account is configured.

This module imports qiskit at the top: the registry imports it only when ``qaoa-qiskit`` is
asked for, so ``import qopt.solvers`` stays free of qiskit. qiskit-ibm-runtime, slower to
import, is imported only when a hardware backend or :func:`ibm_status` needs it.

Reference: Farhi, Goldstone & Gutmann, "A Quantum Approximate Optimization Algorithm",
arXiv:1411.4028 (2014).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import dimod
import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BaseSamplerV2, StatevectorSampler
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers import BackendV2
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_optimization import QuadraticProgram
from qiskit_optimization.algorithms import MinimumEigenOptimizer
from qiskit_optimization.minimum_eigensolvers import QAOA, SamplingVQEResult
from qiskit_optimization.optimizers import COBYLA, NELDER_MEAD, SPSA, Optimizer
from qiskit_optimization.problems import VarType
from qiskit_optimization.utils import algorithm_globals

from qopt._validation import check_bqm, check_int
from qopt.exceptions import (
    InvalidProblemError,
    ProblemTooLargeError,
    SolverConfigurationError,
    SolverUnavailableError,
)
from qopt.solvers.accounts import ibm_status

__all__ = [
    "LOCAL_MAX_QUBITS",
    "OPTIMIZERS",
    "QiskitQAOASolver",
    "bqm_to_quadratic_program",
    "ibm_status",
    "quadratic_program_to_bqm",
]

#: The classical optimizers of qiskit_optimization.optimizers that QiskitQAOASolver accepts.
OPTIMIZERS: dict[str, Callable[..., Optimizer]] = {
    "COBYLA": COBYLA,
    "NELDER_MEAD": NELDER_MEAD,
    "SPSA": SPSA,
}

#: The most qubits the local StatevectorSampler is allowed: 2^32 amplitudes of 16 bytes are
#: 64 GiB, and Qiskit's reference simulator holds several such vectors.
LOCAL_MAX_QUBITS = 32

# Sack & Serbyn found a time step of about 0.75 per layer a good start for QAOA on MaxCut
# (their couplings are 1; we divide by the largest coefficient); see _ramp_initial_point.
_RAMP_TIME_STEP = 0.75


# --------------------------------------------------------------------------------------------
# Translation between dimod and qiskit-optimization


def bqm_to_quadratic_program(
    bqm: dimod.BinaryQuadraticModel,
) -> tuple[QuadraticProgram, list[Hashable]]:
    """Translate a BQM into an equivalent unconstrained binary :class:`QuadraticProgram`.

    A SPIN BQM is first converted to BINARY (``s = 2x - 1``), which keeps the energy of every
    assignment. Variables are renamed ``x0 .. x{n-1}`` in ``bqm.variables`` order, because
    qiskit-optimization only accepts string names; the returned list gives the original label
    of each (``labels[i]`` is the label of ``x{i}``). The offset becomes the objective constant.

    Args:
        bqm: The problem, with finite biases and labels of any hashable type.

    Returns:
        ``(program, labels)``: a minimization program whose objective at ``x`` equals the
        BQM's energy at the corresponding assignment, and the original labels.

    Raises:
        InvalidProblemError: ``bqm`` is not a BQM or has a non-finite bias.

    Examples:
        >>> import dimod
        >>> from qopt.solvers.qiskit_qaoa import bqm_to_quadratic_program
        >>> bqm = dimod.BinaryQuadraticModel({"a": 1.0, ("b", 2): -2.0}, {("a", ("b", 2)): 3.0},
        ...                                  0.5, "BINARY")
        >>> program, labels = bqm_to_quadratic_program(bqm)
        >>> labels
        ['a', ('b', 2)]
        >>> [variable.name for variable in program.variables]
        ['x0', 'x1']
        >>> float(program.objective.evaluate([1, 1])), float(bqm.energy({"a": 1, ("b", 2): 1}))
        (2.5, 2.5)
    """
    check_bqm(bqm, "bqm_to_quadratic_program", allow_empty=True)
    binary = bqm if bqm.vartype is dimod.BINARY else bqm.change_vartype(dimod.BINARY, inplace=False)
    labels = list(binary.variables)
    index = {label: i for i, label in enumerate(labels)}
    program = QuadraticProgram(name="qopt")
    for i in range(len(labels)):
        program.binary_var(f"x{i}")
    linear = {f"x{index[v]}": float(bias) for v, bias in binary.linear.items() if bias}
    quadratic = {
        (f"x{index[u]}", f"x{index[v]}"): float(bias)
        for (u, v), bias in binary.quadratic.items()
        if bias
    }
    program.minimize(constant=float(binary.offset), linear=linear, quadratic=quadratic)
    return program, labels


def quadratic_program_to_bqm(
    program: QuadraticProgram, *, labels: Sequence[Hashable] | None = None
) -> dimod.BinaryQuadraticModel:
    """Translate an unconstrained binary :class:`QuadraticProgram` into a BINARY BQM.

    Diagonal quadratic terms ``c * x_i * x_i`` become linear (``x_i^2 = x_i`` for binaries). A
    maximization program is negated, so that the BQM's lowest energy is the program's optimum
    (energies are then minus the objective).

    Args:
        program: A program whose variables are all binary and which has no constraints (convert
            constrained programs first, e.g. with qiskit-optimization's
            ``QuadraticProgramToQubo``).
        labels: Optional BQM label for each program variable, in program order, e.g. the labels
            returned by :func:`bqm_to_quadratic_program`. Defaults to the variable names.

    Returns:
        A BINARY BQM with one variable per program variable (unused ones included).

    Raises:
        InvalidProblemError: The program has constraints or a non-binary variable, or
            ``labels`` does not give one distinct label per variable.

    Examples:
        >>> import dimod
        >>> from qopt.solvers.qiskit_qaoa import bqm_to_quadratic_program, quadratic_program_to_bqm
        >>> bqm = dimod.BinaryQuadraticModel({"a": 1.0}, {("a", "b"): -1.0}, 2.0, "SPIN")
        >>> program, labels = bqm_to_quadratic_program(bqm)
        >>> back = quadratic_program_to_bqm(program, labels=labels)
        >>> back.vartype.name
        'BINARY'
        >>> float(back.energy({"a": 1, "b": 0})), float(bqm.energy({"a": 1, "b": -1}))
        (4.0, 4.0)
    """
    owner = "quadratic_program_to_bqm"
    if not isinstance(program, QuadraticProgram):
        raise InvalidProblemError(
            f"{owner} expects a qiskit_optimization QuadraticProgram. "
            f"Got {type(program).__name__} instead."
        )
    if program.linear_constraints or program.quadratic_constraints:
        raise InvalidProblemError(
            f"{owner} translates unconstrained programs only; this one has "
            f"{program.get_num_linear_constraints()} linear and "
            f"{program.get_num_quadratic_constraints()} quadratic constraint(s). Turn the "
            "constraints into penalties first (qiskit_optimization.converters."
            "QuadraticProgramToQubo), or build a qopt.constraints.ConstrainedQUBO instead."
        )
    not_binary = [v.name for v in program.variables if v.vartype != VarType.BINARY]
    if not_binary:
        raise InvalidProblemError(
            f"{owner} needs binary variables only; {not_binary[:3]} are not binary. Convert "
            "integer variables with qiskit_optimization.converters.IntegerToBinary first."
        )
    names = [v.name for v in program.variables]
    if labels is None:
        mapping: dict[str, Hashable] = {name: name for name in names}
    else:
        given = list(labels)
        if len(given) != len(names) or len(set(given)) != len(given):
            raise InvalidProblemError(
                f"The 'labels' parameter of {owner} must give one distinct label per program "
                f"variable ({len(names)}). Got {len(given)} label(s), "
                f"{len(set(given))} distinct, instead."
            )
        mapping = dict(zip(names, given, strict=True))
    sign = -1.0 if program.objective.sense.name == "MAXIMIZE" else 1.0
    bqm = dimod.BinaryQuadraticModel(dimod.BINARY)
    for name in names:
        bqm.add_variable(mapping[name], 0.0)
    for variable, bias in program.objective.linear.to_dict(use_name=True).items():
        bqm.add_linear(mapping[str(variable)], sign * float(bias))
    for (u, v), bias in program.objective.quadratic.to_dict(use_name=True).items():
        if u == v:  # x * x == x for binary variables
            bqm.add_linear(mapping[str(u)], sign * float(bias))
        else:
            bqm.add_quadratic(mapping[str(u)], mapping[str(v)], sign * float(bias))
    bqm.offset = sign * float(program.objective.constant)
    return bqm


# --------------------------------------------------------------------------------------------
# Solver


class _TranspilingSampler(BaseSamplerV2):
    """A V2 sampler that transpiles each circuit for a backend before running it.

    Why not QAOA's own ``pass_manager``: in qiskit-optimization 0.7, ``SamplingVQE`` then maps
    the cost operator onto the *physical* qubits while the measured bits stay in *virtual*
    order, so every energy the optimizer sees is wrong whenever the layout is not the identity.
    Transpiling here keeps operator and bits both virtual.
    """

    def __init__(self, sampler: BaseSamplerV2, backend: BackendV2, seed: int | None) -> None:
        self._sampler = sampler
        self._pass_manager = generate_preset_pass_manager(
            optimization_level=1, backend=backend, seed_transpiler=seed
        )
        # Keyed by id(); the original circuit is kept so that its id cannot be reused.
        self._transpiled: dict[int, tuple[QuantumCircuit, QuantumCircuit]] = {}

    def _isa(self, circuit: QuantumCircuit) -> QuantumCircuit:
        cached = self._transpiled.get(id(circuit))
        if cached is None or cached[0] is not circuit:
            cached = (circuit, self._pass_manager.run(circuit))
            self._transpiled[id(circuit)] = cached
        return cached[1]

    def run(self, pubs: Iterable[Any], *, shots: int | None = None) -> Any:
        isa_pubs = []
        for pub_like in pubs:
            pub = SamplerPub.coerce(pub_like, shots)
            isa_pubs.append(
                SamplerPub(self._isa(pub.circuit), pub.parameter_values, pub.shots, validate=False)
            )
        return self._sampler.run(isa_pubs, shots=shots)


def _ramp_initial_point(reps: int, scale: float) -> np.ndarray:
    """Linear-ramp (discretized annealing) angles, in qiskit's parameter order β..., γ....

    Starting from a discretized linear annealing path beats random starts for QAOA
    (Sack & Serbyn, "Quantum annealing initialization of the quantum approximate optimization
    algorithm", Quantum 5, 491 (2021); Zhou et al., Phys. Rev. X 10, 021067 (2020) found
    optimized angles follow such a ramp). Layer i gets γ = -t·Δt and β = (1 - t)·Δt with
    t = (i + 1/2) / p; the time step Δt is divided by the largest cost coefficient so that the
    start does not depend on the BQM's scale. On 3-regular MaxCut (n = 8, 12; p = 2; COBYLA,
    50 iterations) it gave a higher mean cut than random starts for every graph tried. γ is negative because qiskit's mixer exp(-iβΣX) has |+...+> as its *highest*
    eigenstate; this is the annealing direction (the opposite sign gives the same
    probabilities, by complex conjugation).
    """
    time_step = _RAMP_TIME_STEP / scale if scale > 0 else _RAMP_TIME_STEP
    fraction = (np.arange(reps) + 0.5) / reps
    return np.concatenate([(1.0 - fraction) * time_step, -fraction * time_step])


class QiskitQAOASolver(dimod.Sampler):
    """QAOA with qiskit-optimization: local statevector simulation or IBM Quantum hardware.

    Each :meth:`sample` call translates the BQM into a ``QuadraticProgram``
    (:func:`bqm_to_quadratic_program`) and runs qiskit-optimization's
    ``MinimumEigenOptimizer(QAOA(sampler, optimizer, reps=reps))``: the classical optimizer
    tunes the 2p angles against the sampled energy expectation, then the circuit is sampled
    ``shots`` times at the best angles. The sample set holds every distinct bitstring measured
    in that final run, with ``num_occurrences`` and its BQM energy. The angles start on a linear
    annealing ramp (Sack & Serbyn, Quantum 5, 491 (2021)); ``seed`` fixes the shot sampling,
    the transpiler and SPSA's perturbations, so runs are reproducible on simulators.

    ``info`` carries ``optimal_parameters`` (angle name to value), ``num_function_evaluations``,
    ``expected_energy`` (the optimizer's last sampled energy expectation, BQM units), ``reps``,
    ``optimizer``, ``shots``, ``backend`` and ``timing`` (``preprocessing_ns``, ``sampling_ns``,
    ``postprocessing_ns``).

    Args:
        reps: QAOA depth p (number of cost + mixer layers), at least 1.
        optimizer: Classical optimizer, one of ``OPTIMIZERS`` (case-insensitive):
            ``"COBYLA"``, ``"NELDER_MEAD"`` or ``"SPSA"`` (noise-robust, for hardware).
        maxiter: Optimizer iterations (COBYLA and Nelder-Mead: about one circuit run each).
        shots: Measurements per circuit evaluation, and in the final sampling.
        seed: Seed for reproducible runs; ``None`` draws one each time.
        max_qubits: Largest BQM accepted (one qubit per variable). Qiskit's reference
            statevector simulation costs 2^n memory and time: on one CPU core an evaluation
            took about 3 s at 16 qubits and a minute at 20. At most ``LOCAL_MAX_QUBITS`` (32)
            on the local simulator.
        backend: ``None`` for the local ``StatevectorSampler``; the name of an IBM Quantum
            backend (e.g. ``"ibm_torino"``) to run on hardware through qiskit-ibm-runtime's
            ``SamplerV2`` with the configured account; or a ``qiskit.providers.BackendV2``
            instance (an ``IBMBackend``, or a local fake/simulator backend for testing).

    Attributes:
        remote: ``True`` when the circuits run on IBM hardware (a backend name or an
            ``IBMBackend``); ``get_solver`` then adds a local fallback, and the metering
            composite records the energy as not measured.

    Raises:
        SolverConfigurationError: An option is out of range or unknown (at construction).

    Examples:
        >>> import dimod
        >>> from qopt.solvers.qiskit_qaoa import QiskitQAOASolver
        >>> bqm = dimod.BinaryQuadraticModel({"a": -1, "b": -1}, {("a", "b"): 2}, 0, "BINARY")
        >>> sampleset = QiskitQAOASolver(seed=0, maxiter=20).sample(bqm)
        >>> float(sampleset.first.energy)
        -1.0
        >>> int(sampleset.record.num_occurrences.sum())
        1024
    """

    #: The classical side runs here; the statevector simulation is CPU-only (MeteredComposite).
    device: str = "cpu"
    remote: bool

    def __init__(
        self,
        *,
        reps: int = 1,
        optimizer: str = "COBYLA",
        maxiter: int = 50,
        shots: int = 1024,
        seed: int | None = None,
        max_qubits: int = 20,
        backend: str | BackendV2 | None = None,
    ) -> None:
        owner = type(self).__name__
        self.reps = check_int(reps, "reps", owner, low=1)
        self.optimizer = _check_optimizer(optimizer, owner)
        self.maxiter = check_int(maxiter, "maxiter", owner, low=1)
        self.shots = check_int(shots, "shots", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1)
        self.max_qubits = check_int(max_qubits, "max_qubits", owner, low=1)
        if isinstance(backend, str):
            if not backend.strip():
                raise SolverConfigurationError(
                    f"The 'backend' parameter of {owner} must be a non-empty IBM backend name. "
                    f"Got {backend!r} instead."
                )
            self.remote = True
        elif isinstance(backend, BackendV2):
            from qiskit_ibm_runtime import IBMBackend

            self.remote = isinstance(backend, IBMBackend)
        elif backend is None:
            self.remote = False
            if self.max_qubits > LOCAL_MAX_QUBITS:
                raise SolverConfigurationError(
                    f"The 'max_qubits' parameter of {owner} must be at most {LOCAL_MAX_QUBITS} "
                    "on the local simulator, which holds 2^n amplitudes of 16 bytes (64 GiB at "
                    f"32 qubits). Got {max_qubits} instead. Use the 'qaoa' backend with "
                    "decompose=True for larger problems, or pass an IBM backend."
                )
        else:
            raise SolverConfigurationError(
                f"The 'backend' parameter of {owner} must be an IBM backend name (str), a "
                f"qiskit.providers.BackendV2 or None. Got {backend!r} instead."
            )
        self.backend = backend
        self._resolved_backend: BackendV2 | None = None if isinstance(backend, str) else backend

    @property
    def parameters(self) -> dict[str, list[Any]]:
        """Per-call overrides accepted by :meth:`sample` (same checks as the constructor)."""
        return {"reps": [], "optimizer": [], "maxiter": [], "shots": [], "seed": []}

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "name": "qaoa-qiskit",
            "max_qubits": self.max_qubits,
            "backend": self._backend_name(),
            "remote": self.remote,
            "optimizers": sorted(OPTIMIZERS),
            "defaults": {
                "reps": self.reps,
                "optimizer": self.optimizer,
                "maxiter": self.maxiter,
                "shots": self.shots,
                "seed": self.seed,
            },
        }

    def _backend_name(self) -> str:
        if self.backend is None:
            return "statevector_sampler"
        if isinstance(self.backend, str):
            return self.backend
        return str(getattr(self.backend, "name", type(self.backend).__name__))

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Run QAOA on ``bqm`` and return the distinct measured bitstrings.

        Args:
            bqm: The problem (SPIN or BINARY, any hashable labels).
            **parameters: Overrides of ``reps``, ``optimizer``, ``maxiter``, ``shots`` and
                ``seed`` for this call.

        Returns:
            A sample set in ``bqm``'s vartype, empty for an empty BQM.

        Raises:
            InvalidProblemError: ``bqm`` has a non-finite bias.
            ProblemTooLargeError: ``bqm`` has more variables than ``max_qubits`` or than the
                backend has qubits.
            SolverConfigurationError: An unknown or out-of-range parameter.
            SolverUnavailableError: No IBM Quantum account, or IBM could not be reached or
                failed, for a hardware backend.
        """
        start = time.perf_counter_ns()
        owner = type(self).__name__
        check_bqm(bqm, owner, allow_empty=True)
        options = self._call_options(parameters)
        num_variables = bqm.num_variables
        if num_variables > self.max_qubits:
            raise ProblemTooLargeError(
                f"{owner} uses one qubit per variable and is limited to max_qubits="
                f"{self.max_qubits}; this BQM has {num_variables} variables. Use a classical "
                "solver (get_solver('sa') or 'tabu'), or decompose the problem into "
                f"subproblems of at most {self.max_qubits} variables; raise max_qubits only if "
                "the simulator's 2^n memory or the backend allows it."
            )
        info: dict[str, Any] = {
            "optimal_parameters": {},
            "num_function_evaluations": 0,
            "expected_energy": None,
            "reps": options["reps"],
            "optimizer": options["optimizer"],
            "shots": options["shots"],
            "backend": self._backend_name(),
        }
        if num_variables == 0:
            sampleset = dimod.SampleSet.from_samples_bqm(([], []), bqm, info=info)
            now = time.perf_counter_ns()
            sampleset.info["timing"] = _timing(start, now, now)
            return sampleset

        program, labels = bqm_to_quadratic_program(bqm)
        operator, ising_offset = program.to_ising()
        scale = float(np.max(np.abs(operator.coeffs))) if len(operator.coeffs) else 0.0
        solve_start = time.perf_counter_ns()
        if scale == 0.0:
            # Every assignment has the same energy: the cost layers are the identity, the state
            # stays |+...+>, and QAOA (whose ansatz then loses its γ angles) has nothing to
            # tune. Its output distribution is uniform; draw that directly.
            rng = np.random.default_rng(options["seed"])
            drawn = rng.integers(0, 2, size=(options["shots"], num_variables), dtype=np.int8)
            states, occurrences = np.unique(drawn, axis=0, return_counts=True)
        else:
            try:
                states, occurrences = self._run_qaoa(program, scale, ising_offset, options, info)
            except MemoryError:
                raise ProblemTooLargeError(
                    f"{owner} ran out of memory simulating {num_variables} qubits locally (2^n "
                    "amplitudes of 16 bytes, several times over). Use the 'qaoa' backend, "
                    "decompose the problem into smaller subproblems, or lower max_qubits."
                ) from None
        solve_end = time.perf_counter_ns()
        if bqm.vartype is dimod.SPIN:
            states = 2 * states - 1
        sampleset = dimod.SampleSet.from_samples_bqm(
            (states, labels), bqm, num_occurrences=occurrences, info=info
        )
        sampleset.info["timing"] = _timing(start, solve_start, solve_end)
        return sampleset

    def _run_qaoa(
        self,
        program: QuadraticProgram,
        scale: float,
        ising_offset: float,
        options: dict[str, Any],
        info: dict[str, Any],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Solve with MinimumEigenOptimizer(QAOA); return BINARY states, counts; fill ``info``."""
        shots = options["shots"]
        sampler = self._sampler(program.get_num_vars(), shots, options["seed"])
        optimizer = OPTIMIZERS[options["optimizer"]](maxiter=options["maxiter"])
        if options["optimizer"] == "SPSA" and options["seed"] is not None:
            # SPSA draws its perturbations from qiskit-optimization's global generator only.
            algorithm_globals.random_seed = options["seed"]
        with warnings.catch_warnings():
            # _TranspilingSampler transpiles, so QAOA's warning about a missing pass manager
            # does not apply.
            warnings.filterwarnings("ignore", message=".*without a pass_manager.*")
            qaoa = QAOA(
                sampler,
                optimizer,
                reps=options["reps"],
                initial_point=_ramp_initial_point(options["reps"], scale),
            )
        try:
            result = MinimumEigenOptimizer(qaoa).solve(program)
        except Exception as error:
            if not self.remote:
                raise
            raise SolverUnavailableError(
                f"{type(self).__name__} failed on IBM backend '{self._backend_name()}' "
                f"({type(error).__name__}: {error})."
            ) from error
        # result.samples holds each distinct bitstring of the final sampling once, with its
        # frequency; frequencies are count / shots, so rounding recovers the counts.
        states = np.array([sample.x for sample in result.samples], dtype=np.int8)
        occurrences = np.array(
            [max(1, round(sample.probability * shots)) for sample in result.samples],
            dtype=np.int64,
        )
        eigen = result.min_eigen_solver_result
        if isinstance(eigen, SamplingVQEResult):
            info["optimal_parameters"] = {
                str(parameter): float(value)
                for parameter, value in (eigen.optimal_parameters or {}).items()
            }
            info["num_function_evaluations"] = int(eigen.cost_function_evals or 0)
            if eigen.eigenvalue is not None:
                # The eigenvalue excludes the Ising offset; adding it gives BQM energy units.
                info["expected_energy"] = float(np.real(eigen.eigenvalue)) + float(ising_offset)
        return states, occurrences

    def _call_options(self, parameters: dict[str, Any]) -> dict[str, Any]:
        owner = f"{type(self).__name__}.sample()"
        unknown = set(parameters) - set(self.parameters)
        if unknown:
            raise SolverConfigurationError(
                f"{owner} got unknown parameter(s) {sorted(unknown)}. "
                f"Its parameters are: {', '.join(sorted(self.parameters))}."
            )
        seed = parameters.get("seed", self.seed)
        return {
            "reps": check_int(parameters.get("reps", self.reps), "reps", owner, low=1),
            "optimizer": _check_optimizer(parameters.get("optimizer", self.optimizer), owner),
            "maxiter": check_int(parameters.get("maxiter", self.maxiter), "maxiter", owner, low=1),
            "shots": check_int(parameters.get("shots", self.shots), "shots", owner, low=1),
            "seed": None if seed is None else check_int(seed, "seed", owner, low=0, high=2**32 - 1),
        }

    def _sampler(self, num_variables: int, shots: int, seed: int | None) -> BaseSamplerV2:
        if self.backend is None:
            # A Generator (not the int) so that successive evaluations draw different shots.
            return StatevectorSampler(default_shots=shots, seed=np.random.default_rng(seed))
        backend = self._hardware_backend()
        if backend.num_qubits is not None and num_variables > backend.num_qubits:
            raise ProblemTooLargeError(
                f"Backend '{self._backend_name()}' has {backend.num_qubits} qubits; this BQM "
                f"has {num_variables} variables. Use a larger backend, a classical solver "
                "(get_solver('sa')), or decompose the problem."
            )
        from qiskit_ibm_runtime import IBMBackend, SamplerV2

        runtime_sampler = SamplerV2(mode=backend)
        runtime_sampler.options.default_shots = shots
        if seed is not None and not isinstance(backend, IBMBackend):
            runtime_sampler.options.simulator.seed_simulator = seed
        return _TranspilingSampler(runtime_sampler, backend, seed)

    def _hardware_backend(self) -> BackendV2:
        if self._resolved_backend is not None:
            return self._resolved_backend
        name = self._backend_name()
        configured, message = ibm_status()
        if not configured:
            raise SolverUnavailableError(
                f"QiskitQAOASolver(backend={name!r}) runs on IBM Quantum hardware and needs an "
                f"account, but {message}"
            )
        try:
            from qiskit_ibm_runtime import QiskitRuntimeService

            backend = QiskitRuntimeService().backend(name)
        except Exception as error:  # network, authentication, unknown backend name
            raise SolverUnavailableError(
                f"Could not reach IBM backend {name!r} ({type(error).__name__}: {error}). Check "
                "the token and instance of your IBM Quantum account, the network, and the "
                "backend name (QiskitRuntimeService().backends() lists yours)."
            ) from error
        self._resolved_backend = backend
        return backend


def _check_optimizer(value: Any, owner: str) -> str:
    if isinstance(value, str):
        name = value.strip().upper().replace("-", "_")
        if name in OPTIMIZERS:
            return name
    choices = ", ".join(repr(name) for name in OPTIMIZERS)
    raise SolverConfigurationError(
        f"The 'optimizer' parameter of {owner} must be one of {choices} (qiskit_optimization."
        f"optimizers). Got {value!r} instead."
    )


def _timing(start: int, solve_start: int, solve_end: int) -> dict[str, int]:
    """dimod-style timing: translation and setup, QAOA itself, building the sample set."""
    return {
        "preprocessing_ns": solve_start - start,
        "sampling_ns": solve_end - solve_start,
        "postprocessing_ns": time.perf_counter_ns() - solve_end,
    }
