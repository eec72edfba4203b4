from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from qopt.circuits.statevector import (
    DiagonalCost,
    all_pairs,
    apply_leading_qubits,
    apply_single_qubit,
    apply_single_qubit_layer,
    block_sizes,
    cnot_permutation,
    cz_signs,
    inner_product,
    kron_gates,
    ring_pairs,
    rx_matrix,
    rx_power,
    ry_matrix,
    rz_matrix,
    uniform_state,
    z_expectations,
    zero_state,
)

# Dense references: 2^n x 2^n matrices built with torch.kron, independent of the kernels.

X = torch.tensor([[0, 1], [1, 0]], dtype=torch.complex128)
Y = torch.tensor([[0, -1j], [1j, 0]], dtype=torch.complex128)
Z = torch.tensor([[1, 0], [0, -1]], dtype=torch.complex128)
I2 = torch.eye(2, dtype=torch.complex128)


def embed(gate: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    """The single-qubit ``gate`` on ``qubit`` of ``n`` (qubit 0 the most significant)."""
    return functools.reduce(torch.kron, [gate if j == qubit else I2 for j in range(n)])


def dense_cnot(control: int, target: int, n: int) -> torch.Tensor:
    zero = torch.tensor([[1, 0], [0, 0]], dtype=torch.complex128)
    one = torch.tensor([[0, 0], [0, 1]], dtype=torch.complex128)
    return embed(zero, control, n) + embed(one, control, n) @ embed(X, target, n)


def dense_cz(a: int, b: int, n: int) -> torch.Tensor:
    one = torch.tensor([[0, 0], [0, 1]], dtype=torch.complex128)
    return torch.eye(2**n, dtype=torch.complex128) - 2 * embed(one, a, n) @ embed(one, b, n)


def random_state(n: int, batch: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    state = torch.randn(batch, 2**n, dtype=torch.complex128, generator=g)
    return state / state.norm(dim=1, keepdim=True)


def test_rotations_are_the_exponentials_of_paulis() -> None:
    theta = torch.tensor(0.83, dtype=torch.float64)
    for matrix, pauli in [(rx_matrix, X), (ry_matrix, Y), (rz_matrix, Z)]:
        expected = torch.linalg.matrix_exp(-0.5j * theta * pauli)
        torch.testing.assert_close(matrix(theta), expected)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_rx_power_is_the_kronecker_power(k: int) -> None:
    theta = -1.3
    expected = functools.reduce(
        torch.kron, [rx_matrix(torch.tensor(theta, dtype=torch.float64))] * k
    )
    got = rx_power(theta, k, dtype=torch.complex128, device=torch.device("cpu"))
    torch.testing.assert_close(got, expected)


def test_kron_gates_matches_torch_kron() -> None:
    gates = ry_matrix(torch.tensor([0.1, 0.7, -1.2], dtype=torch.float64)) @ rz_matrix(
        torch.tensor([0.4, -0.3, 2.0], dtype=torch.float64)
    )
    torch.testing.assert_close(
        kron_gates(gates), torch.kron(torch.kron(gates[0], gates[1]), gates[2])
    )


@pytest.mark.parametrize("n", [1, 3, 5, 6, 9])
def test_single_qubit_layer_matches_dense_matrices(n: int) -> None:
    rng = np.random.default_rng(n)
    angles = torch.tensor(rng.uniform(-3, 3, size=(2, n)), dtype=torch.float64)
    gates = ry_matrix(angles[0]) @ rz_matrix(angles[1])
    state = random_state(n, batch=3, seed=n)
    dense = functools.reduce(torch.mm, [embed(gates[j], j, n) for j in range(n)])
    torch.testing.assert_close(apply_single_qubit_layer(state, gates), state @ dense.T)
    # One gate at a time gives the same.
    one_by_one = state
    for j in range(n):
        one_by_one = apply_single_qubit(one_by_one, gates[j], j, n)
    torch.testing.assert_close(one_by_one, state @ dense.T)


def test_per_example_gates_act_on_their_own_row() -> None:
    n, batch = 5, 4
    rng = np.random.default_rng(0)
    angles = torch.tensor(rng.uniform(-3, 3, size=(batch, n)), dtype=torch.float64)
    gates = ry_matrix(angles)  # (batch, n, 2, 2)
    state = random_state(n, batch, seed=1)
    got = apply_single_qubit_layer(state, gates)
    for row in range(batch):
        dense = functools.reduce(torch.mm, [embed(gates[row, j], j, n) for j in range(n)])
        torch.testing.assert_close(got[row], dense @ state[row])
    got_one = apply_single_qubit(state, gates[:, 2], 2, n)
    for row in range(batch):
        torch.testing.assert_close(got_one[row], embed(gates[row, 2], 2, n) @ state[row])


def test_leading_qubits_with_an_output_buffer() -> None:
    n = 6
    state = random_state(n, batch=2, seed=3)
    block_t = rx_power(0.9, 4, dtype=torch.complex128, device=torch.device("cpu"))
    out = torch.empty_like(state)
    assert apply_leading_qubits(state, block_t, out=out) is out
    torch.testing.assert_close(out, apply_leading_qubits(state, block_t))


@pytest.mark.parametrize("n", [2, 4, 5])
def test_entanglers_match_dense_gates(n: int) -> None:
    state = random_state(n, batch=2, seed=n)
    for pairs in (ring_pairs(n), all_pairs(n)):
        dense_z = functools.reduce(torch.mm, [dense_cz(a, b, n) for a, b in pairs])
        torch.testing.assert_close(state * cz_signs(pairs, n), state @ dense_z.T)
        # Gates applied in the order given: the first pair acts first.
        dense_x = functools.reduce(torch.mm, [dense_cnot(a, b, n) for a, b in reversed(pairs)])
        permutation = cnot_permutation(pairs, n)
        torch.testing.assert_close(state[:, permutation], state @ dense_x.T)
        torch.testing.assert_close(state[:, permutation][:, torch.argsort(permutation)], state)


def test_ring_pairs_of_small_registers() -> None:
    assert ring_pairs(1) == [] and ring_pairs(2) == [(0, 1)]
    assert ring_pairs(4) == [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert len(all_pairs(5)) == 10


@pytest.mark.parametrize("n", [1, 4, 7])
def test_z_expectations_match_dense_observables(n: int) -> None:
    state = random_state(n, batch=3, seed=n)
    for j in range(n):
        expected = torch.einsum("bi,ij,bj->b", state.conj(), embed(Z, j, n), state).real
        torch.testing.assert_close(z_expectations(state)[:, j], expected)


def test_circuits_keep_the_norm_and_the_dtype() -> None:
    n = 7
    for dtype in (torch.float32, torch.float64):
        angles = torch.linspace(-2, 2, n, dtype=dtype)
        state = uniform_state(n, batch=2, dtype=dtype)
        for _ in range(3):
            state = apply_single_qubit_layer(state, ry_matrix(angles) @ rz_matrix(angles / 3))
            state = state * cz_signs(ring_pairs(n), n, dtype=dtype)
        assert state.dtype == (torch.complex64 if dtype == torch.float32 else torch.complex128)
        tolerance = 1e-6 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(
            state.norm(dim=1), torch.ones(2, dtype=dtype), atol=tolerance, rtol=0
        )
    assert zero_state(3, batch=2)[:, 0].tolist() == [1, 1]


def test_layers_are_differentiable_against_finite_differences() -> None:
    n = 4
    angles = torch.tensor([0.3, -0.8, 1.1, 0.2], dtype=torch.float64, requires_grad=True)

    def energy(a: torch.Tensor) -> torch.Tensor:
        state = apply_single_qubit_layer(zero_state(n), ry_matrix(a))
        state = state * cz_signs(ring_pairs(n), n)
        state = apply_single_qubit_layer(state, rx_matrix(a * 2))
        return z_expectations(state).sum()

    assert torch.autograd.gradcheck(energy, (angles,))


def test_diagonal_cost_phase_and_inner_product_in_float64() -> None:
    n = 5
    rng = np.random.default_rng(0)
    values = torch.tensor(rng.integers(-3, 4, size=2**n), dtype=torch.float64)
    table_values = torch.arange(-3, 4, dtype=torch.float64)
    table = (table_values, (values + 3).to(torch.int32))
    state = random_state(n, batch=2, seed=4)
    for cost in (DiagonalCost(values), DiagonalCost(values, table), DiagonalCost(values, chunk=8)):
        phased = state.clone()
        cost.apply_phase(phased, 0.7)
        torch.testing.assert_close(phased, state * torch.exp(-0.7j * values))
        expected = complex(torch.vdot(state[0], values * state[1]))
        assert cost.inner(state[0], state[1]) == pytest.approx(expected, abs=1e-12)
    # float32 amplitudes, float64 sums: a cancelling sum keeps float32's per-term precision.
    single = DiagonalCost(values.to(torch.float32))
    psi = state[0].to(torch.complex64)
    exact = complex(torch.vdot(psi.to(torch.complex128), values * psi.to(torch.complex128)))
    assert single.inner(psi, psi) == pytest.approx(exact, abs=1e-6)


def test_single_precision_inner_products_sum_pieces_in_float64() -> None:
    g = torch.Generator().manual_seed(5)
    left = torch.randn(1 << 16, dtype=torch.complex64, generator=g)
    right = torch.randn(1 << 16, dtype=torch.complex64, generator=g)
    exact = complex(torch.vdot(left.to(torch.complex128), right.to(torch.complex128)))
    scale = float((left.abs() * right.abs()).sum())  # the sum of the terms' sizes
    assert abs(inner_product(left, right) - exact) <= 1e-6 * scale
    assert inner_product(left[:100], right[:100]) == pytest.approx(
        complex(torch.vdot(left[:100], right[:100])), rel=1e-6
    )


def test_block_sizes_cover_the_register() -> None:
    assert block_sizes(11) == [3, 4, 4] and block_sizes(8) == [4, 4] and block_sizes(2) == [2]
    assert math.fsum(block_sizes(23)) == 23


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_kernels_run_on_cuda_and_agree_with_cpu() -> None:
    n = 9
    angles = torch.linspace(-2, 2, n, dtype=torch.float64)
    state = random_state(n, batch=3, seed=0)
    expected = z_expectations(
        apply_single_qubit_layer(state, ry_matrix(angles)) * cz_signs(ring_pairs(n), n)
    )
    on_gpu = apply_single_qubit_layer(state.cuda(), ry_matrix(angles.cuda()))
    on_gpu = on_gpu * cz_signs(ring_pairs(n), n, device="cuda")
    got = z_expectations(on_gpu)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), expected)
