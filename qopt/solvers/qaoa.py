"""Exact-statevector QAOA in torch, on CPU or GPU: the ``qaoa`` backend.

The cost Hamiltonian of a BQM is diagonal, so the simulation needs three things, none of them
a ``2^n x 2^n`` matrix:

- the **cost diagonal** ``C(x)`` for all ``2^n`` basis states, built once per BQM by broadcast
  additions on ``(2,) * n``-style views of one vector (no ``n x 2^n`` bit table);
- the **phase layer** ``exp(-i gamma C)``: one elementwise product, through a lookup table
  when the biases are integers (which saves a ``sin`` and a ``cos`` per amplitude);
- the **mixer layer** ``exp(i beta sum_j X_j)``: a tensor product of ``2 x 2`` rotations,
  applied four qubits at a time as one ``(2^n / 16, 16) @ (16, 16)`` matrix product, so a
  layer costs ``n / 4`` passes over memory.

Gradients come from the adjoint method (reverse-mode differentiation that uncomputes the
state instead of storing it): one forward pass, then a backward sweep carrying the state and
``C|psi>`` together, at about three times the cost of a value. Memory stays at four state
vectors whatever the depth, where autograd would keep one per gate. An Ising model without
fields (MaxCut) is symmetric under flipping every bit; so is its QAOA state, and only half
of it is stored.

The gate kernels are :mod:`qopt.circuits.statevector`'s, the statevector engine the
parameterized-circuit head shares; :class:`QAOASimulator` holds one problem's cost diagonal
and buffers, so a problem is built once and evaluated at any angles.

This is the approach of JPMorgan's QOKit (Lykov, Shaydulin, Sun, Alexeev & Pistoia, "Fast
simulation of high-depth QAOA circuits", SC-W 2023), here in plain torch, so it runs wherever
qopt's torch does.

Conventions: qubit ``j`` is the BQM's ``j``-th variable (``bqm.variables[j]``), and bit 1 is
value 1 (BINARY) or +1 (SPIN). The circuit minimizes the energy ``C`` from ``|+>^n``, the
ground state of the mixer Hamiltonian ``-sum_j X_j``:
``U = prod_k exp(i beta_k sum X) exp(-i gamma_k C)``, so that a linear ramp of positive angles
is a Trotterized anneal. (Papers that write the mixer as ``exp(-i beta X)`` have ``beta`` of the
opposite sign.) ``C`` is the BQM energy minus its mean over all states, divided by the
largest absolute Ising bias (``info["scale"]``): unweighted MaxCut then has unit couplings
whatever its size, so optimal angles carry over between instances of a family.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Any, ClassVar

import dimod
import numpy as np
import torch

from qopt._validation import check_bqm, check_float, check_int
from qopt.circuits.statevector import (
    DiagonalCost,
    apply_leading_qubits,
    available_memory,
    block_sizes,
    cpu_threads,
    default_threads,
    inner_product,
    rx_power,
)
from qopt.exceptions import ProblemTooLargeError, SolverConfigurationError

__all__ = [
    "QAOASimulator",
    "QAOASolver",
    "interpolate_angles",
    "linear_ramp_angles",
    "max_qubits_for_memory",
    "qaoa_cost_diagonal",
    "qaoa_expectation",
    "qaoa_gradient",
]

#: Largest number of distinct cost values for which the phase is a table lookup.
_MAX_PHASE_TABLE = 1 << 20

#: Fraction of the free memory the state may take: the rest is left to the caller and to
#: torch's allocator.
_MEMORY_HEADROOM = 0.75

_OPTIMIZERS = ("lbfgs", "adam", "cobyla")
_INITS = ("interp", "ramp")
_DTYPES = {
    "float32": (torch.float32, torch.complex64),
    "float64": (torch.float64, torch.complex128),
}


def linear_ramp_angles(reps: int, delta_t: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Linear-ramp QAOA angles: a discretized anneal from the mixer to the cost.

    ``gamma_k = (k - 1/2) / p * delta_t`` rises and ``beta_k = (1 - (k - 1/2) / p) * delta_t``
    falls over the ``p`` layers, the schedule of the trotterized quantum annealing (TQA)
    initialization (Sack & Serbyn, "Quantum annealing initialization of the quantum
    approximate optimization algorithm", Quantum 5, 491 (2021)) and of the linear-ramp pattern
    Zhou et al. observed in optimal angles ("Quantum approximate optimization algorithm:
    performance, mechanism, and implementation on near-term devices", PRX 10, 021067 (2020)).
    ``delta_t = 0.75`` is Sack & Serbyn's optimal time step for costs scaled to unit couplings.

    Args:
        reps: The depth ``p``.
        delta_t: The time step of the anneal.

    Returns:
        ``(gammas, betas)``, each of length ``reps``.

    Examples:
        >>> gammas, betas = linear_ramp_angles(2)
        >>> gammas.round(4).tolist(), betas.round(4).tolist()
        ([0.1875, 0.5625], [0.5625, 0.1875])
    """
    owner = "linear_ramp_angles"
    reps = check_int(reps, "reps", owner, low=1)
    delta_t = check_float(delta_t, "delta_t", owner, low=0.0, low_inclusive=False)
    fraction = (np.arange(reps) + 0.5) / reps
    return fraction * delta_t, (1.0 - fraction) * delta_t


def interpolate_angles(gammas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """INTERP: starting angles at depth ``p + 1`` from optimal angles at depth ``p``.

    Zhou et al. (PRX 10, 021067 (2020), eq. B1): ``x'_i = (i-1)/p x_{i-1} + (p-i+1)/p x_i`` for
    ``i = 1..p+1`` with ``x_0 = x_{p+1} = 0``; the optimal schedule keeps its shape as ``p``
    grows, so this start is close to the new optimum.

    Examples:
        >>> g, b = interpolate_angles(np.array([0.4]), np.array([0.3]))
        >>> g.tolist(), b.tolist()
        ([0.4, 0.4], [0.3, 0.3])
    """

    def grow(x: np.ndarray) -> np.ndarray:
        p = len(x)
        padded = np.concatenate([[0.0], np.asarray(x, dtype=float), [0.0]])
        i = np.arange(1, p + 2)
        return (i - 1) / p * padded[i - 1] + (p - i + 1) / p * padded[i]

    return grow(gammas), grow(betas)


def _bytes_per_amplitude(dtype: str) -> int:
    real, complex_ = _DTYPES[dtype]
    real_size = torch.empty((), dtype=real).element_size()
    complex_size = torch.empty((), dtype=complex_).element_size()
    # Peak while optimizing: the state and C|psi> (for the adjoint sweep) plus a ping-pong copy
    # of both, the real cost diagonal, and an int32 phase-table index.
    return 4 * complex_size + real_size + 4


def max_qubits_for_memory(dtype: str = "float32", available_bytes: int | None = None) -> int:
    """Largest QAOA size whose buffers fit in memory.

    ``floor(log2(0.75 * available_bytes / (4 c + r + 4)))`` where ``c`` is the bytes of one
    complex amplitude (8 for float32, 16 for float64), ``r`` of one real (4 or 8): four state
    vectors (the state, ``C|psi>`` for the adjoint gradient, a copy of each for out-of-place
    matrix products), the real cost diagonal and an int32 index into the phase table, with a
    quarter of the memory left free. That is 40 bytes per amplitude in float32 and 76 in
    float64: 16 GiB free allows 28 qubits in float32, 80 GB of GPU memory 30.

    Args:
        dtype: ``"float32"`` or ``"float64"``.
        available_bytes: Free memory; ``None`` reads the host's (MemAvailable).

    Examples:
        >>> max_qubits_for_memory("float32", available_bytes=16 << 30)
        28
        >>> max_qubits_for_memory("float64", available_bytes=80 * 10**9)
        29
    """
    if dtype not in _DTYPES:
        raise SolverConfigurationError(
            f"The 'dtype' parameter of max_qubits_for_memory must be one of "
            f"{sorted(_DTYPES)}. Got {dtype!r} instead."
        )
    if available_bytes is None:
        available_bytes = available_memory(torch.device("cpu"))
    amplitudes = _MEMORY_HEADROOM * available_bytes / _bytes_per_amplitude(dtype)
    return max(0, math.floor(math.log2(amplitudes))) if amplitudes >= 1 else 0


def _vectors(
    bqm: dimod.BinaryQuadraticModel, **options: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """``(linear, rows, cols, quadratic, offset)`` of ``bqm.to_numpy_vectors(**options)``."""
    vectors: Any = bqm.to_numpy_vectors(**options)
    linear, (rows, cols, quadratic), offset = vectors
    return linear, rows, cols, quadratic, float(offset)


def _cost_scale(bqm: dimod.BinaryQuadraticModel) -> float:
    """Largest absolute bias of the Ising form: angles then transfer between instances."""
    spin = bqm.spin
    linear, _, _, quadratic, _ = _vectors(spin)
    largest = max(float(np.abs(linear).max(initial=0.0)), float(np.abs(quadratic).max(initial=0.0)))
    return largest if largest > 0 else 1.0


def _mean_energy(bqm: dimod.BinaryQuadraticModel) -> float:
    """Energy averaged over all states: the offset plus half of each linear and a quarter of
    each quadratic BINARY bias."""
    linear, _, _, quadratic, offset = _vectors(bqm.binary)
    return float(offset + linear.sum() / 2 + quadratic.sum() / 4)


def _is_flip_symmetric(bqm: dimod.BinaryQuadraticModel) -> bool:
    """Whether flipping every bit leaves the energy unchanged: an Ising model without fields.

    Fields below 1e-12 of the largest bias count as zero: a BINARY MaxCut with float weights
    can leave such residues in its Ising form.
    """
    if bqm.num_variables < 2:
        return False
    linear, _, _, quadratic, _ = _vectors(bqm.spin)
    largest = float(np.abs(quadratic).max(initial=0.0))
    return bool(np.all(np.abs(linear) <= 1e-12 * largest)) and largest > 0


def qaoa_cost_diagonal(
    bqm: dimod.BinaryQuadraticModel,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """The energy of every basis state of ``bqm``, as a vector of length ``2^n``.

    Entry ``k`` is the energy (offset included) of the sample whose variable ``j`` (in
    ``bqm.variables`` order) takes bit ``(k >> (n - 1 - j)) & 1``; bit 1 means 1 for a BINARY
    BQM and +1 for a SPIN one. Built from the BINARY form as ``sum_u x_u (a_u + sum_{v>u}
    b_uv x_v)``: for each variable one broadcast addition of its field over the later
    variables, so memory is the output plus a half-length field vector.

    Examples:
        >>> import dimod
        >>> bqm = dimod.BinaryQuadraticModel({"a": 1.0, "b": -2.0}, {("a", "b"): 3.0}, 0.5, "BINARY")
        >>> qaoa_cost_diagonal(bqm).tolist()
        [0.5, -1.5, 1.5, 2.5]
    """
    binary = bqm.binary
    n = binary.num_variables
    linear, rows, cols, values, offset = _vectors(
        binary, variable_order=list(binary.variables), sort_indices=True
    )
    diagonal = torch.full((1 << n,), float(offset), dtype=dtype, device=device)
    if n == 0:
        return diagonal
    upper: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for u, v, b in zip(rows.tolist(), cols.tolist(), values.tolist(), strict=True):
        low, high = (u, v) if u < v else (v, u)
        upper[low].append((high, b))
    for u in range(n):
        if linear[u] == 0 and not upper[u]:
            continue
        rest = n - u - 1
        local = torch.full((1 << rest,), float(linear[u]), dtype=dtype, device=device)
        for v, b in upper[u]:
            local.view(1 << (v - u - 1), 2, 1 << (n - v - 1))[:, 1, :] += b
        diagonal.view(1 << u, 2, 1 << rest)[:, 1, :] += local
    return diagonal


def _phase_table(
    bqm: dimod.BinaryQuadraticModel, diagonal: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(values, index)`` with ``diagonal == values[index]`` when the biases are integers.

    Integer BINARY-form biases make every energy an integer in a known range, so the phase
    ``exp(-i gamma C)`` is ``table[index]`` for a table of one entry per distinct energy: a
    gather instead of a ``sin`` and a ``cos`` per amplitude (the costliest step in float64).
    """
    linear, _, _, quadratic, offset = _vectors(bqm.binary)
    biases = np.concatenate([linear, quadratic])
    if not np.array_equal(biases, np.round(biases)):
        return None
    low = float(offset) + float(np.minimum(biases, 0).sum())
    high = float(offset) + float(np.maximum(biases, 0).sum())
    if high - low + 1 > _MAX_PHASE_TABLE:
        return None
    values = torch.arange(low, high + 1, dtype=torch.float64, device=diagonal.device)
    index = (diagonal - low).round_().to(torch.int32)
    return values, index


class QAOASimulator:
    """The QAOA circuit of one BQM, built once and evaluated at any angles.

    Building costs the cost diagonal (``2^n`` energies) and the phase table; each evaluation
    then costs only the circuit. Reuse one simulator where angles change and the problem does
    not (a parameter scan, an outer optimizer, transfer studies). :func:`qaoa_expectation` and
    :func:`qaoa_gradient` keep the last few simulators they built, keyed by the BQM's
    biases, so repeated calls on one problem reuse them too.

    The gates are :mod:`qopt.circuits.statevector`'s kernels: the phase layer is a
    :class:`~qopt.circuits.statevector.DiagonalCost`, the mixer ``exp(i beta sum X)`` is
    ``RX(-2 beta)`` on every qubit, applied four qubits at a time as one matrix product
    (:func:`~qopt.circuits.statevector.apply_leading_qubits`). States live in rows of
    ``(2, size)`` buffers (row 0 the state, row 1 the adjoint co-state) so that the backward
    sweep moves both through each gate in one call.

    An Ising model without fields (MaxCut) is invariant under flipping every bit, and so is
    its QAOA state: only the half with the first qubit at 0 is stored,
    ``psi(1, y) = psi(0, ~y)``. The first qubit's mixer rotation then pairs ``y`` with its
    complement ``~y = size - 1 - y`` (a reversed read), inner products count each stored
    amplitude twice, and sampling draws the first bit by a fair coin. Half the memory and
    about half the time.

    Args:
        bqm: The problem.
        dtype: ``"float64"`` (default) or ``"float32"``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Examples:
        >>> import dimod
        >>> ring = dimod.BinaryQuadraticModel.from_ising({}, {(i, (i + 1) % 8): 1 for i in range(8)})
        >>> simulator = QAOASimulator(ring)
        >>> [round(simulator.expectation([g], [math.pi / 8]), 3) for g in (0.2, math.pi / 8)]
        [-2.869, -4.0]
    """

    def __init__(
        self, bqm: dimod.BinaryQuadraticModel, *, dtype: str = "float64", device: str = "cpu"
    ) -> None:
        check_bqm(bqm, type(self).__name__)
        if dtype not in _DTYPES:
            raise SolverConfigurationError(
                f"The 'dtype' parameter of QAOASimulator must be one of {sorted(_DTYPES)}. "
                f"Got {dtype!r} instead."
            )
        real_dtype, complex_dtype = _DTYPES[dtype]
        self.symmetric = _is_flip_symmetric(bqm)
        #: Energy = scale * (simulated cost) + offset.
        self.scale = _cost_scale(bqm)
        self.offset = _mean_energy(bqm)
        stored = bqm.binary.copy()
        if self.symmetric:  # keep the half with the first variable at 0
            stored.fix_variable(next(iter(bqm.variables)), 0)
        # Build in float64 (exact for integer biases), then centre on the mean energy (that
        # of |+>) and scale: the adjoint gradient takes differences of <lam|C|phi> terms whose
        # size grows with |C|, and an uncentred C of a few hundred loses float32 to them.
        diagonal = qaoa_cost_diagonal(stored, dtype=torch.float64, device=device)
        table = _phase_table(stored, diagonal)
        diagonal.sub_(self.offset).div_(self.scale)
        if table is not None:
            table = ((table[0] - self.offset) / self.scale, table[1])
        self.cost = DiagonalCost(diagonal.to(real_dtype), table)
        self.size = self.cost.size
        self.factor = 2.0 if self.symmetric else 1.0
        stored_qubits = self.size.bit_length() - 1
        self.num_qubits = stored_qubits + (1 if self.symmetric else 0)
        self.complex_dtype = complex_dtype
        self.device = diagonal.device
        self.blocks = block_sizes(stored_qubits)
        # sum_j X_j on a block, for the mixer's gradient: the derivative of its rotation.
        self._sum_x = {k: _sum_x_block(k, self.device) for k in set(self.blocks)}
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def buffers(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._buffers is None:
            shape = (2, self.size)
            self._buffers = (
                torch.empty(shape, dtype=self.complex_dtype, device=self.device),
                torch.empty(shape, dtype=self.complex_dtype, device=self.device),
            )
        return self._buffers

    def release(self) -> None:
        """Free the state buffers (they are rebuilt on the next evaluation)."""
        self._buffers = None

    def mixer(
        self,
        state: torch.Tensor,
        spare: torch.Tensor,
        beta: float,
        gradient_rows: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, complex]:
        """Apply ``exp(i beta sum X)`` to each row of ``state``; return ``(result, spare, g)``.

        Each block is one matrix product over all rows
        (:func:`~qopt.circuits.statevector.apply_leading_qubits`); the qubit order turns by
        ``k`` per block and is back where it started after the layer.

        With ``gradient_rows = (lam, phi)``, ``g = <lam| sum X |phi>`` (in stored-half units;
        the rotations commute with ``sum X``, so any point of the layer will do), from each
        block's Gram matrix ``G^T = Phi Lambda^H``: one pass over both rows per block.
        """
        inner = 0j
        if self.symmetric:
            state, spare, inner = self._mix_first_qubit(state, spare, beta, gradient_rows)
        rotations = {
            k: rx_power(-2.0 * beta, k, dtype=self.complex_dtype, device=self.device)
            for k in set(self.blocks)
        }
        for k in self.blocks:
            if gradient_rows is not None:
                inner += self._block_inner(state, k, gradient_rows)
            apply_leading_qubits(state, rotations[k], out=spare)
            state, spare = spare, state
        return state, spare, inner

    def _block_inner(self, state: torch.Tensor, k: int, rows: tuple[int, int]) -> complex:
        """``<lam| sum_{j in block} X_j |phi>`` for the block of ``k`` leading qubits.

        The Gram matrix is summed over column chunks, each chunk's in the state's precision
        and the chunks in float64: one float32 product over millions of amplitudes would lose
        the digits the optimizer needs.
        """
        lam, phi = rows
        width = 1 << k
        left, right = state[lam].view(width, -1), state[phi].view(width, -1)
        columns = left.shape[1]
        step = (
            max(1, self.cost.chunk // width) if self.complex_dtype == torch.complex64 else columns
        )
        gram_t = torch.zeros(width, width, dtype=torch.complex128, device=self.device)
        for start in range(0, columns, step):
            part = torch.matmul(right[:, start : start + step], left[:, start : start + step].mH)
            gram_t += part
        return complex((gram_t * self._sum_x[k]).sum().item())

    def _mix_first_qubit(
        self,
        state: torch.Tensor,
        spare: torch.Tensor,
        beta: float,
        gradient_rows: tuple[int, int] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, complex]:
        """The first qubit's rotation on the stored half: ``psi'(y) = c psi(y) + i s psi(~y)``."""
        c, s = math.cos(beta), math.sin(beta)
        inner = 0j
        for start, stop in self.cost.chunks():
            # torch has no negative strides: the reversed read is a copy (one chunk at most).
            mirror = state[:, self.size - stop : self.size - start].flip(-1)
            if gradient_rows is not None:
                lam, phi = gradient_rows
                inner += inner_product(
                    state[lam, start:stop], mirror[phi], exact=self.cost.exact_sums
                )
            torch.mul(state[:, start:stop], c, out=spare[:, start:stop])
            spare[:, start:stop].add_(mirror, alpha=1j * s)
        return spare, state, inner

    def forward(self, gammas: np.ndarray, betas: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepare the QAOA state in row 0 of one buffer; return ``(that buffer, the other)``."""
        state, spare = self.buffers()
        row, spare_row = state[:1], spare[:1]
        row.fill_(1.0 / math.sqrt(self.factor * self.size))
        for gamma, beta in zip(gammas.tolist(), betas.tolist(), strict=True):
            self.cost.apply_phase(row, gamma)
            row, spare_row, _ = self.mixer(row, spare_row, beta)
        if row.data_ptr() == state.data_ptr():
            return state, spare
        return spare, state

    def scaled_expectation(self, gammas: np.ndarray, betas: np.ndarray) -> float:
        """``<psi|C|psi>`` of the scaled, centred cost ``C`` (energy = scale C + offset)."""
        state, _ = self.forward(gammas, betas)
        return self.factor * self.cost.inner(state[0], state[0]).real

    def scaled_value_and_grad(
        self, gammas: np.ndarray, betas: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray]:
        """:meth:`scaled_expectation` and its gradient by the adjoint method.

        With ``phi`` the state after a gate ``exp(-i theta G)`` and ``lam`` the co-state
        ``U_after^dagger C |psi>``, ``dE/dtheta = 2 Im <lam|G|phi>``; both are then moved back
        through the gate by its inverse, one layer at a time, so nothing is stored per gate.
        Here ``G = C`` for a phase layer and ``G = -sum X`` for a mixer layer.
        """
        state, spare = self.forward(gammas, betas)
        value = self.factor * self.cost.inner(state[0], state[0]).real
        torch.mul(state[0], self.cost.diagonal, out=state[1])
        grad_gamma = np.zeros(len(gammas))
        grad_beta = np.zeros(len(betas))
        for layer in reversed(range(len(gammas))):
            state, spare, inner = self.mixer(
                state, spare, -float(betas[layer]), gradient_rows=(1, 0)
            )
            grad_beta[layer] = -2.0 * self.factor * inner.imag
            grad_gamma[layer] = 2.0 * self.factor * self.cost.inner(state[1], state[0]).imag
            self.cost.apply_phase(state, -float(gammas[layer]))
        return value, grad_gamma, grad_beta

    def expectation(self, gammas: Any, betas: Any) -> float:
        """``<psi(gammas, betas)| H |psi(gammas, betas)>`` in the BQM's energy units."""
        g, b = _check_angles(gammas, betas, "QAOASimulator.expectation")
        return self.scaled_expectation(g, b) * self.scale + self.offset

    def value_and_grad(self, gammas: Any, betas: Any) -> tuple[float, np.ndarray, np.ndarray]:
        """``(expectation, d/dgammas, d/dbetas)`` in the BQM's energy units (adjoint method)."""
        g, b = _check_angles(gammas, betas, "QAOASimulator.value_and_grad")
        value, grad_gamma, grad_beta = self.scaled_value_and_grad(g, b)
        return value * self.scale + self.offset, grad_gamma * self.scale, grad_beta * self.scale

    def sample(
        self, gammas: np.ndarray, betas: np.ndarray, num_reads: int, seed: int
    ) -> np.ndarray:
        """Basis-state indices (``num_qubits`` bits) drawn from ``|psi|^2`` by inverse CDF."""
        state, spare = self.forward(gammas, betas)
        # torch.multinomial is limited to 2^24 categories, hence the CDF (float64); it lives
        # in the spare buffer (at least 8 bytes per amplitude), the probabilities in row 1.
        probabilities = torch.view_as_real(state[1]).reshape(-1)[: self.size]
        for start, stop in self.cost.chunks():
            torch.abs(state[0, start:stop], out=probabilities[start:stop]).square_()
        scratch = torch.view_as_real(spare).reshape(-1)
        if scratch.dtype != torch.float64:
            scratch = scratch.view(torch.float64)
        cdf = scratch[: self.size]
        torch.cumsum(probabilities, 0, dtype=torch.float64, out=cdf)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        uniform = torch.rand(
            num_reads, generator=generator, dtype=torch.float64, device=self.device
        )
        drawn = torch.searchsorted(cdf, uniform * cdf[-1], right=True)
        indices: np.ndarray = drawn.clamp_(max=self.size - 1).cpu().numpy().astype(np.int64)
        if self.symmetric:
            flipped = torch.rand(num_reads, generator=generator, device=self.device) < 0.5
            indices = np.where(flipped.cpu().numpy(), 2 * self.size - 1 - indices, indices)
        return indices


def _sum_x_block(k: int, device: torch.device) -> torch.Tensor:
    """``sum_j X_j`` on ``k`` qubits (complex128): 1 where two basis states differ in one bit."""
    index = torch.arange(1 << k, device=device)
    differ = index[:, None] ^ index[None, :]
    one_bit = (differ != 0) & ((differ & (differ - 1)) == 0)
    return one_bit.to(torch.complex128)


#: Simulators kept by qaoa_expectation and qaoa_gradient (most recent last), up to this many
#: stored amplitudes in all: about 50 MB of cost diagonals and phase-table indices. Above
#: that, building is a small part of an evaluation anyway.
_CACHE_AMPLITUDES = 1 << 22

#: Above this many amplitudes a cached simulator's state buffers are freed after each call.
_KEEP_BUFFERS_UP_TO = 1 << 18

_cache: OrderedDict[tuple[Any, ...], QAOASimulator] = OrderedDict()


def _cached_simulator(bqm: dimod.BinaryQuadraticModel, dtype: str, device: str) -> QAOASimulator:
    """A simulator of ``bqm``, reused while its labels, vartype and biases are unchanged."""
    linear, rows, cols, quadratic, offset = _vectors(bqm)
    key = (
        tuple(bqm.variables),
        bqm.vartype,
        linear.tobytes(),
        rows.tobytes(),
        cols.tobytes(),
        quadratic.tobytes(),
        offset,
        dtype,
        device,
    )
    simulator = _cache.pop(key, None)
    if simulator is None:
        simulator = QAOASimulator(bqm, dtype=dtype, device=device)
    _cache[key] = simulator
    while len(_cache) > 1 and sum(s.size for s in _cache.values()) > _CACHE_AMPLITUDES:
        _cache.popitem(last=False)
    return simulator


def _stored_qubits(bqm: dimod.BinaryQuadraticModel) -> int:
    return bqm.num_variables - (1 if _is_flip_symmetric(bqm) else 0)


def _check_angles(gammas: Any, betas: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    g = np.atleast_1d(np.asarray(gammas, dtype=float))
    b = np.atleast_1d(np.asarray(betas, dtype=float))
    if g.ndim != 1 or g.shape != b.shape or not (np.isfinite(g).all() and np.isfinite(b).all()):
        raise SolverConfigurationError(
            f"{owner} needs 'gammas' and 'betas' as two finite 1-D sequences of the same "
            f"length (one angle per layer). Got shapes {g.shape} and {b.shape}."
        )
    return g, b


def qaoa_expectation(
    bqm: dimod.BinaryQuadraticModel,
    gammas: Any,
    betas: Any,
    *,
    dtype: str = "float64",
    device: str = "cpu",
) -> float:
    """Exact ``<psi(gammas, betas)| H |psi(gammas, betas)>`` of a BQM's QAOA state.

    Angles follow :class:`QAOASolver`'s convention (the cost scaled as in the module
    docstring, the mixer ``exp(i beta sum X)``), so ``info["gammas"]`` and ``info["betas"]``
    of a solve can be evaluated on another instance: the parameter transfer studied by
    Galda et al. ("Transferability of optimal QAOA parameters between random graphs", IEEE
    QCE 2021). The result is in the BQM's energy units, offset included. Repeated calls on
    an unchanged BQM reuse its :class:`QAOASimulator`.

    Examples:
        >>> import dimod
        >>> ring = dimod.BinaryQuadraticModel.from_ising({}, {(i, (i + 1) % 8): 1 for i in range(8)})
        >>> round(qaoa_expectation(ring, [math.pi / 8], [math.pi / 8]), 6)  # p=1 optimum: 3/4 cut
        -4.0
    """
    owner = "qaoa_expectation"
    g, b = _check_angles(gammas, betas, owner)
    check_bqm(bqm, owner)
    simulator = _cached_simulator(bqm, dtype, device)
    with cpu_threads(default_threads(simulator.size.bit_length() - 1, device)):
        value = simulator.scaled_expectation(g, b) * simulator.scale + simulator.offset
    if simulator.size > _KEEP_BUFFERS_UP_TO:
        simulator.release()
    return value


def qaoa_gradient(
    bqm: dimod.BinaryQuadraticModel,
    gammas: Any,
    betas: Any,
    *,
    dtype: str = "float64",
    device: str = "cpu",
) -> tuple[float, np.ndarray, np.ndarray]:
    """The expectation of :func:`qaoa_expectation` and its gradient (adjoint method).

    Returns:
        ``(expectation, d/dgammas, d/dbetas)`` in the BQM's energy units.

    Examples:
        >>> import dimod
        >>> ring = dimod.BinaryQuadraticModel.from_ising({}, {(i, (i + 1) % 8): 1 for i in range(8)})
        >>> value, d_gamma, d_beta = qaoa_gradient(ring, [math.pi / 8], [math.pi / 8])
        >>> bool(abs(d_gamma[0]) < 1e-9 and abs(d_beta[0]) < 1e-9)  # a stationary point
        True
    """
    owner = "qaoa_gradient"
    g, b = _check_angles(gammas, betas, owner)
    check_bqm(bqm, owner)
    simulator = _cached_simulator(bqm, dtype, device)
    with cpu_threads(default_threads(simulator.size.bit_length() - 1, device)):
        value, grad_gamma, grad_beta = simulator.scaled_value_and_grad(g, b)
    if simulator.size > _KEEP_BUFFERS_UP_TO:
        simulator.release()
    scale = simulator.scale
    return value * scale + simulator.offset, grad_gamma * scale, grad_beta * scale


class _StopOptimization(Exception):
    """Raised inside an optimizer's objective: budget spent, or no progress any more."""


#: Evaluations without a relative improvement of _PROGRESS_RTOL after which a gradient
#: optimizer stops: float32 rounding (about 1e-6 of <C>) otherwise keeps a line search busy.
_PATIENCE = {"lbfgs": 5, "adam": 25}
_PROGRESS_RTOL = 1e-6


class QAOASolver(dimod.Sampler):
    """Exact-statevector QAOA (Farhi, Goldstone & Gutmann, arXiv:1411.4028) in torch.

    Simulates the depth-``reps`` QAOA circuit for a BQM exactly, optimizes its ``2 * reps``
    angles for the lowest expected energy, samples ``num_reads`` bitstrings from the final
    state and (by default) descends each to a local minimum with dwave-samplers'
    steepest descent. See the module docstring for the simulation method.

    Angles start from a linear ramp (:func:`linear_ramp_angles`); with ``init="interp"`` depth
    1 is optimized first and each optimum seeds the next depth through :func:`interpolate_angles`
    (INTERP, Zhou et al. 2020), otherwise depth ``reps`` is optimized directly. The cost is
    divided by its largest Ising bias before simulation, so angles are on one scale across
    instances (unit couplings for unweighted MaxCut) and the ramp's time step fits them all.

    The default optimizer is L-BFGS (torch, strong-Wolfe line search): the objective is smooth,
    has only ``2 p`` parameters and an exact gradient at about three times the cost of a
    value, which a quasi-Newton method turns into convergence in tens of evaluations; Adam
    needs a tuned learning rate and hundreds of steps. ``"cobyla"`` (scipy, no gradient) is
    the optimizer of most qiskit-optimization QAOA examples, for like-for-like comparisons.

    Args:
        reps: Circuit depth ``p`` (number of phase + mixer layers).
        maxiter: Objective evaluations allowed per optimized depth (one evaluation is a value
            and, for L-BFGS and Adam, its gradient). With ``init="interp"`` each of the
            ``reps`` depths gets this budget.
        optimizer: ``"lbfgs"`` (default), ``"adam"`` or ``"cobyla"``.
        init: ``"interp"`` (grow the depth from 1, default) or ``"ramp"``.
        learning_rate: Adam's step size (unused by the other optimizers).
        num_reads: Bitstrings sampled from the final state.
        seed: Seed of the torch generator that samples them; ``None`` draws one.
        dtype: ``"float32"`` (complex64 amplitudes, default) or ``"float64"``
            (complex128). Single precision halves memory and time; its rounding (about 1e-6
            on ``<C>``) is far below what moves the optimal angles or the samples.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        polish: Descend every sample to a local minimum (steepest descent).
        num_threads: CPU threads torch may use during a solve. ``None`` (default): torch's
            current setting from 16 stored qubits up, one thread below, where matrix products
            of a few thousand amplitudes lose more to thread synchronization than they gain
            (up to a hundredfold when other processes keep the cores busy). The setting is
            process-wide while a solve runs (``torch.set_num_threads``), then restored.
        max_qubits: Largest number of stored qubits; ``None`` derives it from the memory
            free on ``device`` when the solver is built (:func:`max_qubits_for_memory`). An
            Ising BQM without fields (MaxCut) stores one qubit fewer than it has variables.

    L-BFGS and Adam also stop once the best ``<C>`` has improved by less than 1e-6
    (relative) over the last 5 (Adam: 25) evaluations.

    Raises:
        SolverConfigurationError: An option is out of range, or CUDA was asked for where
            torch sees no GPU.
        ProblemTooLargeError: At :meth:`sample` time, for a BQM above ``max_qubits``.

    Examples:
        >>> import dimod
        >>> from qopt.solvers.qaoa import QAOASolver
        >>> ring = dimod.BinaryQuadraticModel.from_ising({}, {(i, (i + 1) % 6): 1 for i in range(6)})
        >>> sampleset = QAOASolver(reps=2, seed=0).sample(ring)
        >>> float(sampleset.first.energy)  # the maximum cut: all 6 edges
        -6.0
        >>> round(sampleset.info["expectation"], 3)  # p=2 on a ring: 5/6 of the edges cut
        -4.0
    """

    name: ClassVar[str] = "qaoa"
    #: Sample-time parameters; each overrides the constructor's value for one call.
    _SAMPLE_PARAMETERS: ClassVar[tuple[str, ...]] = (
        "reps",
        "maxiter",
        "num_reads",
        "seed",
        "polish",
    )

    def __init__(
        self,
        *,
        reps: int = 2,
        maxiter: int = 50,
        optimizer: str = "lbfgs",
        init: str = "interp",
        learning_rate: float = 0.05,
        num_reads: int = 100,
        seed: int | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        polish: bool = True,
        max_qubits: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        owner = type(self).__name__
        self.reps = check_int(reps, "reps", owner, low=1)
        self.maxiter = check_int(maxiter, "maxiter", owner, low=1)
        self.optimizer = self._check_choice(optimizer, "optimizer", _OPTIMIZERS)
        self.init = self._check_choice(init, "init", _INITS)
        self.learning_rate = check_float(
            learning_rate, "learning_rate", owner, low=0.0, low_inclusive=False
        )
        self.num_reads = check_int(num_reads, "num_reads", owner, low=1)
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0, high=2**63 - 1)
        self.dtype = self._check_choice(dtype, "dtype", tuple(_DTYPES))
        self.device = self._check_device(device)
        if not isinstance(polish, bool):
            raise SolverConfigurationError(
                f"The 'polish' parameter of {owner} must be a bool. Got {polish!r} instead."
            )
        self.polish = polish
        self.num_threads = (
            None if num_threads is None else check_int(num_threads, "num_threads", owner, low=1)
        )
        if max_qubits is None:
            free = available_memory(torch.device(self.device))
            self.max_qubits = max_qubits_for_memory(self.dtype, free)
        else:
            self.max_qubits = check_int(max_qubits, "max_qubits", owner, low=1, high=40)

    def _threads_for(self, bqm: dimod.BinaryQuadraticModel) -> int | None:
        """CPU threads for a simulation; ``None`` leaves torch's setting alone."""
        if self.device == "cpu" and self.num_threads is not None:
            return self.num_threads
        return default_threads(_stored_qubits(bqm), self.device)

    def _check_choice(self, value: Any, name: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise SolverConfigurationError(
                f"The '{name}' parameter of {type(self).__name__} must be one of "
                f"{', '.join(repr(c) for c in choices)}. Got {value!r} instead."
            )
        return str(value)

    def _check_device(self, device: Any) -> str:
        owner = type(self).__name__
        try:
            parsed = torch.device(device)
        except (RuntimeError, TypeError):
            parsed = None
        if parsed is None or parsed.type not in ("cpu", "cuda"):
            raise SolverConfigurationError(
                f"The 'device' parameter of {owner} must be 'cpu', 'cuda' or 'cuda:N'. "
                f"Got {device!r} instead."
            )
        if parsed.type == "cpu":
            return "cpu"
        if not torch.cuda.is_available():
            raise SolverConfigurationError(
                f"{owner} was asked for device={device!r}, but torch sees no CUDA GPU here "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False). Use "
                "device='cpu', or install a CUDA build of torch on a machine with a GPU."
            )
        index = parsed.index if parsed.index is not None else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise SolverConfigurationError(
                f"{owner} was asked for device={device!r}, but torch sees {count} GPU(s) "
                f"(cuda:0 to cuda:{count - 1})."
            )
        return f"cuda:{index}"

    @property
    def parameters(self) -> dict[str, list[Any]]:
        return {name: [] for name in self._SAMPLE_PARAMETERS}

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "dtype": self.dtype,
            "max_qubits": self.max_qubits,
            "optimizer": self.optimizer,
            "init": self.init,
        }

    def _sample_options(self, parameters: dict[str, Any]) -> dict[str, Any]:
        owner = f"{type(self).__name__}.sample"
        unknown = set(parameters) - set(self._SAMPLE_PARAMETERS)
        if unknown:
            raise SolverConfigurationError(
                f"{owner}() got unknown parameter(s) {sorted(unknown)}. "
                f"Its parameters are: {', '.join(self._SAMPLE_PARAMETERS)}."
            )
        options = {
            name: parameters.get(name, getattr(self, name)) for name in self._SAMPLE_PARAMETERS
        }
        options["reps"] = check_int(options["reps"], "reps", owner, low=1)
        options["maxiter"] = check_int(options["maxiter"], "maxiter", owner, low=1)
        options["num_reads"] = check_int(options["num_reads"], "num_reads", owner, low=1)
        if options["seed"] is None:
            options["seed"] = int(np.random.default_rng().integers(2**63 - 1))
        options["seed"] = check_int(options["seed"], "seed", owner, low=0, high=2**63 - 1)
        if not isinstance(options["polish"], bool):
            raise SolverConfigurationError(
                f"The 'polish' parameter of {owner} must be a bool. "
                f"Got {options['polish']!r} instead."
            )
        return options

    def _check_size(self, bqm: dimod.BinaryQuadraticModel, symmetric: bool) -> None:
        n = bqm.num_variables
        stored = n - 1 if symmetric else n
        if stored > self.max_qubits:
            needed = _bytes_per_amplitude(self.dtype) * 2.0**stored / 2**30
            limit = self.max_qubits + (1 if symmetric else 0)
            raise ProblemTooLargeError(
                f"QAOASolver simulates 2^n amplitudes and is limited to {limit} variables for "
                f"this BQM on {self.device} in {self.dtype} (derived from free memory; about "
                f"{needed:.3g} GiB would be needed); it has {n}. Decompose it: "
                "get_solver('qaoa', decompose=True), or DecompositionSolver(QAOASolver(...), "
                "subproblem_size=12) from qopt.solvers.decomposition; or use a classical "
                "solver (get_solver('sa'))."
            )

    def _optimize(
        self, sim: QAOASimulator, reps: int, maxiter: int
    ) -> tuple[np.ndarray, np.ndarray, float, int, list[float]]:
        """Optimal scaled angles, their scaled ``<C>``, evaluations spent and per-depth history."""
        depths = [reps] if self.init == "ramp" else list(range(1, reps + 1))
        gammas, betas = linear_ramp_angles(depths[0])
        evaluations = 0
        history: list[float] = []
        value = math.inf
        for depth in depths:
            if depth > depths[0]:
                gammas, betas = interpolate_angles(gammas, betas)
            gammas, betas, value, spent = self._optimize_depth(sim, gammas, betas, maxiter)
            evaluations += spent
            history.append(value)
        return gammas, betas, value, evaluations, history

    def _optimize_depth(
        self, sim: QAOASimulator, gammas: np.ndarray, betas: np.ndarray, maxiter: int
    ) -> tuple[np.ndarray, np.ndarray, float, int]:
        p = len(gammas)
        best: dict[str, Any] = {"value": math.inf, "x": np.concatenate([gammas, betas])}
        trace: list[float] = []  # best value after each evaluation
        patience = _PATIENCE.get(self.optimizer)
        spent = 0

        def evaluate(x: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None]:
            nonlocal spent
            if spent >= maxiter:
                raise _StopOptimization
            if patience is not None and len(trace) > patience:
                earlier, now = trace[-patience - 1], trace[-1]
                if earlier - now <= _PROGRESS_RTOL * max(1.0, abs(now)):
                    raise _StopOptimization
            spent += 1
            if gradient:
                value, grad_gamma, grad_beta = sim.scaled_value_and_grad(x[:p], x[p:])
                grad: np.ndarray | None = np.concatenate([grad_gamma, grad_beta])
            else:
                value, grad = sim.scaled_expectation(x[:p], x[p:]), None
            if value < best["value"]:
                best["value"], best["x"] = value, np.array(x, dtype=float)
            trace.append(best["value"])
            return value, grad

        start = best["x"].copy()
        try:
            if self.optimizer == "cobyla":
                from scipy.optimize import minimize

                minimize(
                    lambda x: evaluate(x, False)[0],
                    start,
                    method="COBYLA",
                    options={"maxiter": maxiter},
                )
            else:
                params = torch.tensor(start, dtype=torch.float64, requires_grad=True)
                if self.optimizer == "adam":
                    adam = torch.optim.Adam([params], lr=self.learning_rate)
                    for _ in range(maxiter):
                        adam.zero_grad()
                        _, grad = evaluate(params.detach().numpy(), True)
                        params.grad = torch.from_numpy(grad)
                        adam.step()
                else:
                    lbfgs = torch.optim.LBFGS(
                        [params],
                        lr=1.0,
                        max_iter=maxiter,
                        max_eval=maxiter,
                        tolerance_grad=1e-5,
                        tolerance_change=1e-9,
                        history_size=2 * p + 2,
                        line_search_fn="strong_wolfe",
                    )

                    def closure() -> torch.Tensor:
                        value, grad = evaluate(params.detach().numpy(), True)
                        params.grad = torch.from_numpy(grad)
                        return torch.tensor(value, dtype=torch.float64)

                    lbfgs.step(closure)
        except _StopOptimization:
            pass
        x = best["x"]
        return x[:p].copy(), x[p:].copy(), float(best["value"]), spent

    def sample(self, bqm: dimod.BinaryQuadraticModel, **parameters: Any) -> dimod.SampleSet:
        """Optimize the QAOA angles for ``bqm`` and sample from the optimized state.

        Args:
            bqm: The problem; any vartype, any variable labels.
            **parameters: Per-call overrides of ``reps``, ``maxiter``, ``num_reads``,
                ``seed`` and ``polish``.

        Returns:
            ``num_reads`` samples with their energies; ``info`` holds ``expectation`` (final
            ``<C>``, BQM units), ``gammas`` and ``betas`` (optimal, for the scaled cost),
            ``scale``, ``evaluations``, ``history``, ``reps``, ``device``, ``dtype`` and
            ``timing`` (``preprocessing_ns``, ``sampling_ns``, ``postprocessing_ns``).
        """
        check_bqm(bqm, type(self).__name__, allow_empty=True)
        options = self._sample_options(parameters)
        if bqm.num_variables == 0:
            return dimod.SampleSet.from_samples_bqm(([], []), bqm)
        symmetric = _is_flip_symmetric(bqm)
        self._check_size(bqm, symmetric)
        t0 = time.perf_counter_ns()
        with cpu_threads(self._threads_for(bqm)):
            sim = QAOASimulator(bqm, dtype=self.dtype, device=self.device)
            scale, offset = sim.scale, sim.offset
            t1 = time.perf_counter_ns()
            gammas, betas, value, evaluations, history = self._optimize(
                sim, options["reps"], options["maxiter"]
            )
            indices = sim.sample(gammas, betas, options["num_reads"], options["seed"])
            sim.release()
        t2 = time.perf_counter_ns()
        n = bqm.num_variables
        shifts = np.arange(n - 1, -1, -1, dtype=np.int64)
        bits = ((indices[:, None] >> shifts) & 1).astype(np.int8)
        samples = 2 * bits - 1 if bqm.vartype is dimod.SPIN else bits
        labels = list(bqm.variables)
        if options["polish"]:
            from dwave.samplers import SteepestDescentSolver

            polished = SteepestDescentSolver().sample(bqm, initial_states=(samples, labels))
            samples = polished.record.sample
            labels = list(polished.variables)
        t3 = time.perf_counter_ns()
        info = {
            "expectation": value * scale + offset,
            "gammas": gammas.tolist(),
            "betas": betas.tolist(),
            "scale": scale,
            "evaluations": evaluations,
            "history": [h * scale + offset for h in history],
            "reps": options["reps"],
            "flip_symmetric": symmetric,
            "optimizer": self.optimizer,
            "device": self.device,
            "dtype": self.dtype,
            "timing": {
                "preprocessing_ns": t1 - t0,
                "sampling_ns": t2 - t1,
                "postprocessing_ns": t3 - t2,
            },
        }
        return dimod.SampleSet.from_samples_bqm((samples, labels), bqm, info=info)
