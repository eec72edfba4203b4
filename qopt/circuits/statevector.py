"""Batched exact statevector simulation in torch: the gate kernels of every circuit in qopt.

A state is a complex tensor of shape ``(batch, 2^n)``: one row per example (or, for the QAOA
adjoint sweep, one row for the state and one for its co-state), on whatever device and in
whatever precision it was made. Qubit ``0`` is the most significant bit of the index:
amplitude ``k`` belongs to the basis state whose qubit ``j`` is ``(k >> (n - 1 - j)) & 1``.

No kernel builds a ``2^n x 2^n`` matrix:

- **single-qubit layers** (one ``2 x 2`` gate per qubit, shared by the batch or one per
  example) are applied ``k`` qubits at a time: the Kronecker product of the ``k`` gates is a
  ``2^k x 2^k`` block, and with the block's qubits as the leading axis of the state,
  ``(M A)^T = A^T M^T`` is one tall matrix product whose output has those qubits last
  (:func:`apply_leading_qubits`). After blocks covering all ``n`` qubits the order is back
  where it started, and a layer costs ``n / k`` passes over memory instead of ``n``;
- **diagonal layers** (a cost Hamiltonian's phase ``exp(-i gamma C)``, a layer of CZ gates)
  are one elementwise product (:class:`DiagonalCost`, :func:`cz_signs`);
- **permutations** (a layer of CNOT gates) are one gather (:func:`cnot_permutation`);
- **Pauli-Z expectations** of every qubit are one matrix product of ``|psi|^2`` with a
  ``(2^n, n)`` table of signs (:func:`z_expectations`).

Every kernel is differentiable by torch's autograd when called without ``out=``; the QAOA
backend passes ``out=`` buffers to run without allocating.

Examples:
    >>> import torch
    >>> state = zero_state(2, batch=1)
    >>> angles = torch.tensor([torch.pi / 2, 0.0], dtype=torch.float64)
    >>> state = apply_single_qubit_layer(state, ry_matrix(angles))
    >>> z_expectations(state).round(decimals=6).tolist()  # qubit 0 on the equator, 1 at |0>
    [[0.0, 1.0]]
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "BLOCK_QUBITS",
    "MIN_QUBITS_FOR_THREADS",
    "DiagonalCost",
    "all_pairs",
    "apply_leading_qubits",
    "apply_single_qubit",
    "apply_single_qubit_layer",
    "available_memory",
    "block_sizes",
    "cnot_permutation",
    "complex_dtype_of",
    "cpu_threads",
    "cz_signs",
    "default_threads",
    "inner_product",
    "kron_gates",
    "real_dtype_of",
    "ring_pairs",
    "rx_matrix",
    "rx_power",
    "ry_matrix",
    "rz_matrix",
    "uniform_state",
    "z_eigenvalues",
    "z_expectations",
    "zero_state",
]

#: Qubits per block of a single-qubit layer: a 16 x 16 block keeps the matrix product
#: memory-bound on CPU and GPU, and cuts the passes over the state by four against one gate
#: at a time.
BLOCK_QUBITS = 4

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_REAL = {torch.complex64: torch.float32, torch.complex128: torch.float64}


def complex_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """The complex dtype with ``dtype``'s precision (complex dtypes map to themselves)."""
    return dtype if dtype in _REAL else _COMPLEX[dtype]


def real_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """The real dtype with ``dtype``'s precision (real dtypes map to themselves)."""
    return _REAL.get(dtype, dtype)


def zero_state(
    num_qubits: int,
    *,
    batch: int = 1,
    dtype: torch.dtype = torch.complex128,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``batch`` copies of ``|0...0>``, shape ``(batch, 2^num_qubits)``."""
    state = torch.zeros(batch, 1 << num_qubits, dtype=complex_dtype_of(dtype), device=device)
    state[:, 0] = 1.0
    return state


def uniform_state(
    num_qubits: int,
    *,
    batch: int = 1,
    dtype: torch.dtype = torch.complex128,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``batch`` copies of ``|+...+>``, shape ``(batch, 2^num_qubits)``."""
    size = 1 << num_qubits
    return torch.full(
        (batch, size), 1.0 / math.sqrt(size), dtype=complex_dtype_of(dtype), device=device
    )


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: torch's count on a GPU, MemAvailable (or sysconf) on the host."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small laptop
        return 4 << 30


#: Below this many qubits a simulation runs on one CPU thread: matrix products of a few
#: thousand amplitudes lose more to thread synchronization than they gain (up to a
#: hundredfold when other processes keep the cores busy).
MIN_QUBITS_FOR_THREADS = 16


def default_threads(num_qubits: int, device: str | torch.device) -> int | None:
    """One CPU thread below :data:`MIN_QUBITS_FOR_THREADS` qubits on CPU; ``None`` (torch's
    setting) otherwise."""
    on_cpu = torch.device(device).type == "cpu"
    return 1 if on_cpu and num_qubits < MIN_QUBITS_FOR_THREADS else None


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the block with torch limited to ``count`` CPU threads (``None``: unchanged).

    The setting is process-wide (``torch.set_num_threads``) while the block runs, then
    restored.
    """
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _rotation(theta: torch.Tensor, pauli: str) -> torch.Tensor:
    theta = torch.as_tensor(theta)
    half = theta / 2
    cos = torch.cos(half).to(complex_dtype_of(theta.dtype))
    sin = torch.sin(half).to(cos.dtype)
    if pauli == "x":
        rows = [[cos, -1j * sin], [-1j * sin, cos]]
    elif pauli == "y":
        rows = [[cos, -sin], [sin, cos]]
    else:
        rows = [[cos - 1j * sin, torch.zeros_like(cos)], [torch.zeros_like(cos), cos + 1j * sin]]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rx_matrix(theta: torch.Tensor) -> torch.Tensor:
    """``RX(theta) = exp(-i theta X / 2)`` for a tensor of angles: shape ``theta.shape + (2, 2)``."""
    return _rotation(theta, "x")


def ry_matrix(theta: torch.Tensor) -> torch.Tensor:
    """``RY(theta) = exp(-i theta Y / 2)`` for a tensor of angles: shape ``theta.shape + (2, 2)``."""
    return _rotation(theta, "y")


def rz_matrix(theta: torch.Tensor) -> torch.Tensor:
    """``RZ(theta) = exp(-i theta Z / 2)`` for a tensor of angles: shape ``theta.shape + (2, 2)``."""
    return _rotation(theta, "z")


@functools.cache
def _hamming_distances(k: int, device: torch.device) -> torch.Tensor:
    size = 1 << k
    index = torch.arange(size)
    distance = torch.zeros(size, size, dtype=torch.long)
    for bit in range(k):
        distance += ((index[:, None] >> bit) & 1) != ((index[None, :] >> bit) & 1)
    return distance.flatten().to(device)


def rx_power(theta: float, k: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``RX(theta)`` on each of ``k`` qubits as one ``2^k x 2^k`` block.

    Entry ``(a, b)`` is ``cos(theta/2)^(k-w) (-i sin(theta/2))^w`` with ``w`` the Hamming
    distance of ``a`` and ``b``: ``k + 1`` numbers and one gather, where a Kronecker product
    would take ``k`` dispatches. The block is symmetric. This is the QAOA
    mixer ``exp(i beta sum X) = RX(-2 beta)^{(x) n}``.
    """
    weight = np.arange(k + 1)
    half = theta / 2
    powers = np.cos(half) ** (k - weight) * (-1j * np.sin(half)) ** weight
    if dtype in (torch.float32, torch.complex64):
        powers = powers.astype(np.complex64)
    table = torch.from_numpy(powers).to(device)
    distances = _hamming_distances(k, torch.device(device))
    return torch.index_select(table, 0, distances).view(1 << k, 1 << k)


def kron_gates(gates: torch.Tensor) -> torch.Tensor:
    """Kronecker product of ``k`` single-qubit gates ``(..., k, 2, 2) -> (..., 2^k, 2^k)``.

    The first gate acts on the most significant qubit of the block. Leading dimensions
    broadcast, so a batch of per-example gates gives a batch of blocks.
    """
    block = gates[..., 0, :, :]
    for j in range(1, gates.shape[-3]):
        gate = gates[..., j, :, :]
        size = block.shape[-1] * 2
        block = (block[..., :, None, :, None] * gate[..., None, :, None, :]).reshape(
            *block.shape[:-2], size, size
        )
    return block


def block_sizes(num_qubits: int, block: int = BLOCK_QUBITS) -> list[int]:
    """How a layer on ``num_qubits`` qubits is cut into blocks: the remainder first."""
    remainder = num_qubits % block
    return ([remainder] if remainder else []) + [block] * (num_qubits // block)


def apply_leading_qubits(
    state: torch.Tensor, matrix_t: torch.Tensor, *, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Apply a ``k``-qubit gate to the leading ``k`` qubits of each row; they become the
    trailing ones.

    ``state`` is ``(rows, 2^n)``; ``matrix_t`` is the *transpose* of the gate's
    ``2^k x 2^k`` block, shared (2-D) or one per row (``(rows, 2^k, 2^k)``); a symmetric
    block (:func:`rx_power`) is its own transpose. Each row, seen as a ``(2^k, 2^(n-k))``
    matrix ``A``, becomes ``A^T M^T`` read as a flat vector: the gate applied and the qubit
    order turned by ``k``, in one matrix product that BLAS runs on the transposed view
    without a copy. With ``out=`` (a shared block only) the result is written there, row by
    row, without allocating.
    """
    width = matrix_t.shape[-1]
    rows = state.shape[0]
    columns = state.view(rows, width, -1).mT
    if out is None:
        return torch.matmul(columns, matrix_t).reshape(rows, -1)
    for row in range(rows):
        torch.matmul(columns[row], matrix_t, out=out[row].view(-1, width))
    return out


def apply_single_qubit_layer(
    state: torch.Tensor, gates: torch.Tensor, block: int = BLOCK_QUBITS
) -> torch.Tensor:
    """One single-qubit gate on every qubit: ``gates`` is ``(n, 2, 2)`` or ``(rows, n, 2, 2)``.

    Cut into blocks of ``block`` qubits (:func:`block_sizes`), each applied as one matrix
    product by :func:`apply_leading_qubits`; differentiable.
    """
    first = 0
    for k in block_sizes(gates.shape[-3], block):
        block_t = kron_gates(gates[..., first : first + k, :, :].mT)
        state = apply_leading_qubits(state, block_t)
        first += k
    return state


def apply_single_qubit(
    state: torch.Tensor, gate: torch.Tensor, qubit: int, num_qubits: int
) -> torch.Tensor:
    """One gate ``(2, 2)`` or ``(rows, 2, 2)`` on one qubit of each row; differentiable."""
    rows = state.shape[0]
    view = state.view(rows, 1 << qubit, 2, 1 << (num_qubits - qubit - 1))
    if gate.dim() == 2:
        result = torch.einsum("ij,rajc->raic", gate, view)
    else:
        result = torch.einsum("rij,rajc->raic", gate, view)
    return result.reshape(rows, -1)


def _bit(num_qubits: int, qubit: int, device: torch.device) -> torch.Tensor:
    """Qubit ``qubit``'s bit of every basis state, shape ``(2^n,)`` (int64)."""
    return (torch.arange(1 << num_qubits, device=device) >> (num_qubits - 1 - qubit)) & 1


def cz_signs(
    pairs: list[tuple[int, int]],
    num_qubits: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """The diagonal of a layer of CZ gates on ``pairs``: ``-1`` where both qubits of an odd
    number of pairs are 1. CZ gates commute, so their order does not matter."""
    device = torch.device(device)
    parity = torch.zeros(1 << num_qubits, dtype=torch.long, device=device)
    for a, b in pairs:
        parity ^= _bit(num_qubits, a, device) & _bit(num_qubits, b, device)
    return (1 - 2 * parity).to(real_dtype_of(dtype))


def cnot_permutation(
    pairs: list[tuple[int, int]], num_qubits: int, *, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Index ``p`` with ``state[:, p]`` = the layer of CNOT ``(control, target)`` gates on
    ``pairs``, applied in the order given. Its inverse is ``torch.argsort(p)``."""
    index = torch.arange(1 << num_qubits, device=device)
    # state'[k] = state[f(k)] where f undoes the gates: apply them to k in reverse order.
    source = index.clone()
    for control, target in reversed(pairs):
        flip = (source >> (num_qubits - 1 - control)) & 1
        source = source ^ (flip << (num_qubits - 1 - target))
    return source


@functools.lru_cache(maxsize=8)
def z_eigenvalues(num_qubits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(2^n, n)``: ``Z_j``'s eigenvalue of every basis state, +1 for bit 0, -1 for bit 1."""
    bits = torch.stack([_bit(num_qubits, j, device) for j in range(num_qubits)], dim=1)
    return (1 - 2 * bits).to(dtype)


def z_expectations(state: torch.Tensor) -> torch.Tensor:
    """``<Z_j>`` of every qubit ``j`` for every row: ``(rows, 2^n) -> (rows, n)``, real."""
    num_qubits = state.shape[-1].bit_length() - 1
    probabilities = torch.view_as_real(state).square().sum(-1)
    return probabilities @ z_eigenvalues(num_qubits, probabilities.dtype, state.device)


class DiagonalCost:
    """A diagonal Hamiltonian ``C``: its phase layer ``exp(-i gamma C)`` and ``<l|C|r>``.

    Args:
        diagonal: ``C``'s entries, real, length ``2^n``; its device and precision are the
            simulation's.
        table: Optional ``(values, index)`` with ``diagonal == values[index]`` (``values``
            float64): the phase is then ``table[index]``, a gather instead of a ``sin`` and a
            ``cos`` per amplitude (the costliest step in float64).
        chunk: Amplitudes per pass, to bound the temporaries.

    Inner products are summed in float64 whatever the state's precision: ``C`` centred on
    its mean makes ``<psi|C|psi>`` a sum of terms that largely cancel, which a float32
    accumulator over millions of amplitudes would get wrong in the fourth digit.
    """

    def __init__(
        self,
        diagonal: torch.Tensor,
        table: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        chunk: int | None = None,
    ) -> None:
        self.diagonal = diagonal
        self.table = table
        self.size = diagonal.numel()
        self.complex_dtype = complex_dtype_of(diagonal.dtype)
        self.chunk = chunk or min(self.size, max(1 << 18, self.size >> 4))
        device = diagonal.device
        self._angle = torch.empty(self.chunk, dtype=diagonal.dtype, device=device)
        self._ones = torch.ones(self.chunk, dtype=diagonal.dtype, device=device)
        self._scratch = torch.empty(self.chunk, dtype=self.complex_dtype, device=device)
        self.exact_sums = diagonal.dtype == torch.float64
        self._table_ones = torch.ones_like(table[0]) if table is not None else self._ones

    def chunks(self) -> list[tuple[int, int]]:
        """``(start, stop)`` of each pass."""
        return [(s, min(s + self.chunk, self.size)) for s in range(0, self.size, self.chunk)]

    def apply_phase(self, state: torch.Tensor, gamma: float) -> None:
        """Multiply every row of ``state`` by ``exp(-i gamma C)`` in place."""
        if self.table is not None:
            values, index = self.table
            lookup = torch.polar(self._table_ones, values * -gamma).to(self.complex_dtype)
            if self.chunk == self.size:
                torch.index_select(lookup, 0, index, out=self._scratch)
                state.mul_(self._scratch)
                return
        for start, stop in self.chunks():
            phase = self._scratch[: stop - start]
            if self.table is not None:
                torch.index_select(lookup, 0, index[start:stop], out=phase)
            else:
                angle = self._angle[: stop - start]
                torch.mul(self.diagonal[start:stop], -gamma, out=angle)
                torch.polar(self._ones[: stop - start], angle, out=phase)
            state[:, start:stop].mul_(phase)

    def inner(self, left: torch.Tensor, right: torch.Tensor) -> complex:
        """``<left|C|right>`` of two vectors, summed in float64."""
        total = 0j
        for start, stop in self.chunks():
            weighted = self._scratch[: stop - start]
            torch.mul(right[start:stop], self.diagonal[start:stop], out=weighted)
            total += inner_product(left[start:stop], weighted, exact=self.exact_sums)
        return total


#: Terms per single-precision partial sum of :func:`inner_product`: short enough that its
#: float32 rounding stays near one unit in the last place of the partial sum.
_PARTIAL_SUM = 1 << 12


def inner_product(left: torch.Tensor, right: torch.Tensor, *, exact: bool = False) -> complex:
    """``<left|right>`` of two vectors, accumulated in float64.

    ``exact=True`` (the vectors are already complex128) is one ``vdot``. Otherwise the
    vectors are cut into pieces of 4096 amplitudes, each piece's ``vdot`` is taken in the
    vectors' precision and the pieces are summed in float64: one single-precision ``vdot``
    over millions of amplitudes loses the digits a cancelling sum (a centred cost) needs.
    """
    if exact or left.numel() <= _PARTIAL_SUM:
        return complex(torch.vdot(left, right).item())
    total = 0j
    for start in range(0, left.numel(), _PARTIAL_SUM):
        stop = start + _PARTIAL_SUM
        total += complex(torch.vdot(left[start:stop], right[start:stop]).item())
    return total


def all_pairs(num_qubits: int) -> list[tuple[int, int]]:
    """Every pair of qubits ``(a, b)``, ``a < b``: the all-to-all entangler of trapped ions."""
    return list(itertools.combinations(range(num_qubits), 2))


def ring_pairs(num_qubits: int) -> list[tuple[int, int]]:
    """Neighbours on a ring, ``(j, j + 1 mod n)``; one pair for two qubits, none for one."""
    if num_qubits < 2:
        return []
    if num_qubits == 2:
        return [(0, 1)]
    return [(j, (j + 1) % num_qubits) for j in range(num_qubits)]
