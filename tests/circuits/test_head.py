from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

from qopt.circuits.head import QuantumHead
from qopt.circuits.statevector import ry_matrix, rz_matrix
from qopt.exceptions import InvalidInputError, ProblemTooLargeError, SolverConfigurationError

I2 = torch.eye(2, dtype=torch.complex128)
Z = torch.tensor([[1, 0], [0, -1]], dtype=torch.complex128)


def embed(gate: torch.Tensor, qubit: int, n: int) -> torch.Tensor:
    return functools.reduce(torch.kron, [gate if j == qubit else I2 for j in range(n)])


def dense_head_expectations(head: QuantumHead, features: torch.Tensor) -> torch.Tensor:
    """The head's circuit with dense 2^n x 2^n matrices, one example at a time."""
    n = head.num_qubits
    encoded = head.encode(features.to(torch.float64)).detach()
    weights = head.weights.detach()
    cz = torch.ones(2**n, dtype=torch.complex128)
    for a, b in head.pairs:
        both = torch.tensor(
            [((k >> (n - 1 - a)) & 1) * ((k >> (n - 1 - b)) & 1) for k in range(2**n)]
        )
        cz = cz * (1 - 2 * both)
    rows = []
    for example in range(features.shape[0]):
        if head.encoding == "angle":
            psi = torch.zeros(2**n, dtype=torch.complex128)
            psi[0] = 1
        else:
            psi = encoded[example].to(torch.complex128)
        for layer in range(head.layers):
            for j in range(n):
                if head.encoding == "angle":
                    psi = embed(ry_matrix(encoded[example, j]), j, n) @ psi
                psi = embed(rz_matrix(weights[layer, j, 0]), j, n) @ psi
                psi = embed(ry_matrix(weights[layer, j, 1]), j, n) @ psi
            psi = cz * psi
        rows.append([float((psi.conj() @ embed(Z, j, n) @ psi).real) for j in range(n)])
    return torch.tensor(rows, dtype=torch.float64)


def features(batch: int, width: int, seed: int) -> torch.Tensor:
    return torch.randn(
        batch, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@pytest.mark.parametrize(
    ("encoding", "entangler", "n"),
    [("angle", "ring", 3), ("angle", "all", 4), ("amplitude", "ring", 3), ("angle", "none", 5)],
)
def test_head_circuit_matches_dense_matrices(encoding: str, entangler: str, n: int) -> None:
    head = QuantumHead(
        5,
        2,
        num_qubits=n,
        layers=2,
        encoding=encoding,
        entangler=entangler,
        dtype="float64",
        seed=1,
    )
    with torch.no_grad():
        head.weights.uniform_(-math.pi, math.pi)  # far from the small initial angles
    x = features(4, 5, seed=2)
    got = head.expectations(x).detach()
    torch.testing.assert_close(got, dense_head_expectations(head, x))
    assert got.abs().max() <= 1 + 1e-12


def gradients(head: QuantumHead, x: torch.Tensor) -> dict[str, torch.Tensor]:
    head.zero_grad()
    x = x.clone().requires_grad_(head.encoding == "angle")
    logits = head(x)
    # A loss that weighs every output differently, so every path of the gradient counts.
    (
        logits * torch.linspace(-1, 2, logits.numel(), dtype=logits.dtype).view_as(logits)
    ).sum().backward()
    grads = {name: p.grad.clone() for name, p in head.named_parameters() if p.grad is not None}
    if x.grad is not None:
        grads["features"] = x.grad.clone()
    return grads


@pytest.mark.parametrize(
    ("encoding", "projection", "entangler"),
    [("angle", "learned", "ring"), ("angle", "none", "all"), ("amplitude", "fixed", "ring")],
)
def test_backprop_adjoint_and_parameter_shift_agree(
    encoding: str, projection: str, entangler: str
) -> None:
    n = 4
    width = n if projection == "none" else 6
    x = features(5, width, seed=3)
    results = {}
    for gradient in ("backprop", "adjoint", "parameter-shift"):
        head = QuantumHead(
            width,
            3,
            num_qubits=n,
            layers=3,
            encoding=encoding,
            projection=projection,
            entangler=entangler,
            gradient=gradient,
            dtype="float64",
            seed=7,
        )
        with torch.no_grad():
            head.weights.uniform_(-math.pi, math.pi, generator=torch.Generator().manual_seed(0))
        results[gradient] = gradients(head, x)
    reference = results["backprop"]
    assert "weights" in reference and ("features" in reference) == (encoding == "angle")
    for method in ("adjoint", "parameter-shift"):
        assert results[method].keys() == reference.keys()
        for name, grad in reference.items():
            torch.testing.assert_close(
                results[method][name], grad, atol=1e-10, rtol=1e-8, msg=f"{method}: {name}"
            )


def test_adjoint_differentiates_a_learned_amplitude_encoding() -> None:
    x = features(4, 10, seed=4)
    results = []
    for gradient in ("backprop", "adjoint"):
        head = QuantumHead(
            10,
            2,
            num_qubits=3,
            layers=2,
            encoding="amplitude",
            gradient=gradient,
            dtype="float64",
            seed=3,
        )
        results.append(gradients(head, x))
    for name, grad in results[0].items():
        torch.testing.assert_close(results[1][name], grad, atol=1e-10, rtol=1e-8, msg=name)
    assert results[0]["projection.weight"].abs().sum() > 0


def test_shots_converge_to_the_exact_expectation_within_binomial_error() -> None:
    x = features(8, 6, seed=5)
    exact_head = QuantumHead(6, 2, num_qubits=4, layers=2, dtype="float64", seed=11)
    exact = exact_head.expectations(x).detach()
    p_one = (1 - exact) / 2
    errors = []
    for shots in (100, 10_000, 1_000_000):
        head = QuantumHead(6, 2, num_qubits=4, layers=2, dtype="float64", seed=11, shots=shots)
        sampled = head.expectations(x).detach()
        # <Z> = 1 - 2 k / N with k ~ Binomial(N, p): standard deviation 2 sqrt(p (1 - p) / N).
        sigma = 2 * torch.sqrt(p_one * (1 - p_one) / shots).clamp_min(1e-12)
        assert ((sampled - exact).abs() <= 5 * sigma + 1e-12).all()
        errors.append(float((sampled - exact).abs().mean()))
        if shots == 100:
            assert (sampled - exact).abs().max() > 0  # it is noisy
            # the estimate lives on the grid 1 - 2 k / N
            ones = ((1 - sampled) * shots / 2).numpy()
            np.testing.assert_allclose(ones, ones.round(), atol=1e-9)
    assert errors[0] > errors[1] > errors[2]


def test_shot_gradients_straight_through_and_parameter_shift() -> None:
    x = features(6, 5, seed=6)
    exact = QuantumHead(5, 2, num_qubits=3, layers=2, dtype="float64", seed=2)
    straight = QuantumHead(5, 2, num_qubits=3, layers=2, dtype="float64", seed=2, shots=50)
    reference = gradients(exact, x)
    # Straight-through: the readout sees noisy <Z>, the circuit the exact gradient. With a
    # loss linear in the logits, the circuit's gradients are then exactly the exact head's,
    # and only the readout's own weights see the noise.
    through = gradients(straight, x)
    torch.testing.assert_close(through["weights"], reference["weights"], atol=1e-12, rtol=0)
    torch.testing.assert_close(through["features"], reference["features"], atol=1e-12, rtol=0)
    assert not torch.allclose(through["readout.weight"], reference["readout.weight"])
    # Parameter shift with shots: every shifted circuit measured, the gradient noisy around
    # the exact one, converging as shots grow.
    many = QuantumHead(
        5,
        2,
        num_qubits=3,
        layers=2,
        dtype="float64",
        seed=2,
        shots=2_000_000,
        gradient="parameter-shift",
    )
    few = QuantumHead(
        5, 2, num_qubits=3, layers=2, dtype="float64", seed=2, shots=100, gradient="parameter-shift"
    )
    error_many = (gradients(many, x)["weights"] - reference["weights"]).abs().max()
    error_few = (gradients(few, x)["weights"] - reference["weights"]).abs().max()
    assert error_many < 0.01 < error_few


def test_float32_and_float64_heads_agree() -> None:
    x = features(4, 6, seed=8)
    single = QuantumHead(6, 2, num_qubits=5, layers=2, seed=4)
    double = QuantumHead(6, 2, num_qubits=5, layers=2, seed=4, dtype="float64")
    assert single.weights.dtype == torch.float32
    torch.testing.assert_close(single(x.float()).double(), double(x), atol=1e-5, rtol=1e-5)


def test_the_same_seed_gives_the_same_head() -> None:
    first = QuantumHead(6, 2, num_qubits=3, projection="fixed", seed=9)
    second = QuantumHead(6, 2, num_qubits=3, projection="fixed", seed=9)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert not torch.equal(first.weights, QuantumHead(6, 2, num_qubits=3, seed=10).weights)


@pytest.mark.parametrize("projection", ["learned", "fixed"])
def test_state_dict_round_trip_scores_the_same(projection: str) -> None:
    x = features(5, 6, seed=12)
    trained = QuantumHead(6, 3, num_qubits=3, projection=projection, shots=None, seed=1)
    with torch.no_grad():
        trained.weights.add_(0.5)
    fresh = QuantumHead(6, 3, num_qubits=3, projection=projection, seed=2)
    assert not torch.allclose(fresh(x.float()), trained(x.float()))
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(x.float()), trained(x.float()), atol=0, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_head_runs_on_cuda_and_keeps_tensors_there() -> None:
    x = features(16, 6, seed=1)
    for gradient in ("backprop", "adjoint", "parameter-shift"):
        head = QuantumHead(
            6, 2, num_qubits=6, layers=2, gradient=gradient, dtype="float64", seed=0, shots=1000
        )
        cpu_grads = gradients(head, x)
        head = head.cuda()
        cuda_grads = gradients(head, x.cuda())
        assert cuda_grads.keys() == cpu_grads.keys()
        for grad in cuda_grads.values():
            assert grad.device.type == "cuda" and torch.isfinite(grad).all()
        head.shots = None
        cpu = QuantumHead(6, 2, num_qubits=6, layers=2, gradient=gradient, dtype="float64", seed=0)
        torch.testing.assert_close(head(x.cuda()).cpu(), cpu(x), atol=1e-10, rtol=1e-10)


# Bad input ---------------------------------------------------------------------------------


def test_wrong_width_and_non_finite_features_are_clear_errors() -> None:
    head = QuantumHead(6, 2, num_qubits=3, seed=0)
    with pytest.raises(InvalidInputError, match=r"shape \(batch, 6\).*\(4, 5\).*in_features=5"):
        head(torch.randn(4, 5))
    with pytest.raises(InvalidInputError, match="shape"):
        head(torch.randn(6))
    bad = torch.randn(4, 6)
    bad[1, 2] = math.nan
    bad[3, 0] = math.inf
    with pytest.raises(InvalidInputError, match=r"non-finite features .* in 2 of 4 examples"):
        head(bad)
    with pytest.raises(InvalidInputError, match=r"torch\.Tensor"):
        head(np.zeros((4, 6)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value", "match"),
    [
        ("shots", 0, r"'shots' parameter of QuantumHead must be an int in \[1, inf\)"),
        ("num_qubits", 0, "'num_qubits'"),
        ("layers", 0, "'layers'"),
        ("encoding", "basis", "'encoding' parameter of QuantumHead must be one of"),
        ("gradient", "spsa", "'gradient'"),
        ("entangler", "line", "'entangler'"),
        ("dtype", "float16", "'dtype'"),
    ],
)
def test_bad_options_are_refused_at_construction(option: str, value: object, match: str) -> None:
    with pytest.raises(SolverConfigurationError, match=match):
        QuantumHead(6, 2, **{"num_qubits": 3, option: value})  # type: ignore[arg-type]


def test_inconsistent_options_say_what_to_do() -> None:
    with pytest.raises(SolverConfigurationError, match=r"exactly 3 features.*in_features is 6"):
        QuantumHead(6, 2, num_qubits=3, projection="none")
    with pytest.raises(SolverConfigurationError, match=r"parameter shifts.*projection='fixed'"):
        QuantumHead(6, 2, num_qubits=3, encoding="amplitude", gradient="parameter-shift")


def test_qubit_limit_gives_size_limit_and_way_out() -> None:
    with pytest.raises(
        ProblemTooLargeError, match=r"40 qubits needs about .* GiB.*allows \d+ qubits.*fewer qubits"
    ):
        QuantumHead(6, 2, num_qubits=40)
    head = QuantumHead(6, 2, num_qubits=20, layers=4, seed=0)  # one example fits
    batch = 1
    while head.memory_bytes(batch) < 10 * 2**40:  # 10 TiB: more than any machine here
        batch *= 2
    with pytest.raises(ProblemTooLargeError, match=rf"batch of {batch}.*smaller batch.*'adjoint'"):
        head.expectations(torch.zeros(batch, 6).expand(batch, 6))
