"""A parameterized quantum circuit (PQC) as a classification head, simulated exactly in torch.

:class:`QuantumHead` maps a feature vector per example (the embedding of a frozen pretrained
model, say) to class logits through a circuit of ``num_qubits`` qubits:

1. **projection**: the features go to one angle per qubit (angle encoding) or to ``2^n``
   amplitudes (amplitude encoding), through a learned linear map, a fixed random one, or
   none;
2. **encoding**: *angle*: ``RY(x_j)`` on qubit ``j``, repeated before every layer (data
   re-uploading, Pérez-Salinas et al., "Data re-uploading for a universal quantum
   classifier", Quantum 4, 226 (2020)); *amplitude*: the normalized vector is the initial
   state;
3. **ansatz**: ``layers`` hardware-efficient layers, each ``RZ(phi_j)`` then ``RY(theta_j)``
   on every qubit and a layer of CZ gates on a ``"ring"`` of neighbours or on ``"all"``
   pairs (the all-to-all connectivity of trapped ions);
4. **readout**: ``<Z_j>`` of every qubit, then a linear layer to the classes.

The whole batch is one simulation (a state of shape ``(batch, 2^n)`` on the features'
device), on :mod:`qopt.circuits.statevector`'s kernels: one layer of single-qubit gates is
``n / 4`` batched matrix products, a CZ layer one elementwise product.

Gradients (``gradient=``):

- ``"backprop"``: torch's autograd through the simulation (fastest; keeps every
  intermediate state);
- ``"adjoint"``: the adjoint method (Jones & Gacon, "Efficient calculation of gradients in
  classical simulations of variational quantum algorithms", arXiv:2009.02823): one forward
  pass, then the state and the co-state ``O|psi>`` move back gate by gate, each angle's
  derivative ``Im <lambda|P|psi>`` read on the way; a few states in memory at any depth;
- ``"parameter-shift"``: what hardware can do: each rotation's derivative is
  ``(f(theta + pi/2) - f(theta - pi/2)) / 2`` (Mitarai et al., PRA 98, 032309 (2018);
  Schuld et al., PRA 99, 032331 (2019)); every shifted circuit of the batch is evaluated in
  one batched simulation (chunked to bound memory), as one hardware job would.

``shots=N`` replaces each exact ``<Z_j>`` by the mean of ``N`` simulated measurements:
``1 - 2 k / N`` with ``k ~ Binomial(N, p_j)`` and ``p_j`` the probability that qubit ``j``
reads 1. Each qubit's marginal is drawn on its own: each estimate has the distribution a
hardware measurement of ``N`` shots gives it, but the correlations between qubits of one
shot are not kept (they do not enter a linear readout's expected value). Gradients with
shots: straight-through (the exact gradient of the exact expectation) for ``"backprop"``
and ``"adjoint"``; for ``"parameter-shift"`` each shifted circuit is sampled with ``N``
shots too, as on hardware.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn

from qopt._validation import check_int
from qopt.circuits.statevector import (
    all_pairs,
    apply_single_qubit_layer,
    available_memory,
    complex_dtype_of,
    cz_signs,
    ring_pairs,
    ry_matrix,
    rz_matrix,
    z_eigenvalues,
    z_expectations,
    zero_state,
)
from qopt.exceptions import InvalidInputError, ProblemTooLargeError, SolverConfigurationError

if TYPE_CHECKING:
    from qopt.circuits.hardware import EstimatorExecutor

__all__ = ["QuantumHead"]

Encoding = Literal["angle", "amplitude"]
Projection = Literal["learned", "fixed", "none"]
Entangler = Literal["ring", "all", "none"]
Gradient = Literal["backprop", "adjoint", "parameter-shift"]

_ENCODINGS = ("angle", "amplitude")
_PROJECTIONS = ("learned", "fixed", "none")
_ENTANGLERS = ("ring", "all", "none")
_GRADIENTS = ("backprop", "adjoint", "parameter-shift")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}

#: Fraction of the free memory the simulation may take.
_MEMORY_HEADROOM = 0.5

#: Amplitudes per batched simulation of parameter-shift terms (128 MiB in complex64).
_SHIFT_CHUNK_AMPLITUDES = 1 << 24


class QuantumHead(nn.Module):
    """A parameterized-quantum-circuit classification head on feature vectors.

    See the module docstring for the circuit. Trainable: the projection (when
    ``projection="learned"``), two angles per qubit and layer, and the readout layer.

    Args:
        in_features: Width of the feature vectors.
        num_classes: Output logits per example.
        num_qubits: Qubits ``n`` of the circuit (memory grows as ``batch x 2^n``).
        layers: Ansatz layers (with angle encoding, each re-uploads the data).
        encoding: ``"angle"`` (default) or ``"amplitude"``.
        projection: ``"learned"`` (a linear layer, default), ``"fixed"`` (a seeded random
            Gaussian map, not trained) or ``"none"`` (features used as they are: ``n``
            angles, or up to ``2^n`` amplitudes, zero-padded).
        entangler: CZ gates on a ``"ring"`` (default), on ``"all"`` pairs, or ``"none"``.
        gradient: ``"backprop"`` (default), ``"adjoint"`` or ``"parameter-shift"``.
        shots: ``None`` for exact expectations, or the measurements per expectation.
        dtype: ``"float32"`` (complex64 amplitudes, default) or ``"float64"``.
        seed: Seeds the initial parameters, the fixed projection and the shot noise.
        executor: Run the circuits on hardware through a
            :class:`~qopt.circuits.hardware.EstimatorExecutor` (with
            ``gradient="parameter-shift"`` and angle encoding): each training step sends
            its batch and every shifted circuit of its gradient as one job; ``shots`` sets
            the estimator's precision (``1 / sqrt(shots)``).

    Raises:
        SolverConfigurationError: An option is out of range, or parameter-shift was asked to
            differentiate a learned amplitude encoding (state preparation has no rotation
            angle to shift).
        ProblemTooLargeError: ``num_qubits`` cannot fit even one example in memory; at call
            time, a batch that does not fit. The message gives the size, the limit and what
            to do.
        InvalidInputError: At call time, features of the wrong width or non-finite features.

    Examples:
        >>> import torch
        >>> head = QuantumHead(in_features=6, num_classes=2, num_qubits=3, layers=2, seed=0)
        >>> logits = head(torch.randn(5, 6))
        >>> logits.shape
        torch.Size([5, 2])
        >>> logits.sum().backward()  # gradients reach the circuit angles
        >>> head.weights.grad.shape  # (layers, qubits, (RZ, RY))
        torch.Size([2, 3, 2])
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        num_qubits: int = 8,
        layers: int = 2,
        encoding: Encoding = "angle",
        projection: Projection = "learned",
        entangler: Entangler = "ring",
        gradient: Gradient = "backprop",
        shots: int | None = None,
        dtype: str = "float32",
        seed: int | None = None,
        executor: EstimatorExecutor | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_features = check_int(in_features, "in_features", owner, low=1)
        self.num_classes = check_int(num_classes, "num_classes", owner, low=1)
        self.num_qubits = check_int(num_qubits, "num_qubits", owner, low=1, high=40)
        self.layers = check_int(layers, "layers", owner, low=1)
        self.encoding = _check_choice(encoding, "encoding", _ENCODINGS)
        self.projection_kind = _check_choice(projection, "projection", _PROJECTIONS)
        self.entangler = _check_choice(entangler, "entangler", _ENTANGLERS)
        self.gradient = _check_choice(gradient, "gradient", _GRADIENTS)
        self.shots = None if shots is None else check_int(shots, "shots", owner, low=1)
        self.dtype_name = _check_choice(dtype, "dtype", tuple(_DTYPES))
        self.seed = None if seed is None else check_int(seed, "seed", owner, low=0)
        dtype_ = _DTYPES[self.dtype_name]
        n = self.num_qubits
        width = n if self.encoding == "angle" else 1 << n
        if self.projection_kind == "none":
            fits = in_features == n if self.encoding == "angle" else in_features <= width
            if not fits:
                need = f"exactly {n}" if self.encoding == "angle" else f"at most 2^{n} = {width}"
                raise SolverConfigurationError(
                    f"QuantumHead with projection='none' and {self.encoding} encoding needs "
                    f"{need} features (one per {'qubit' if self.encoding == 'angle' else 'amplitude'}); "
                    f"in_features is {in_features}. Use projection='learned' or 'fixed'."
                )
        if (
            self.gradient == "parameter-shift"
            and self.encoding == "amplitude"
            and self.projection_kind == "learned"
        ):
            raise SolverConfigurationError(
                "QuantumHead cannot train a learned projection into an amplitude encoding by "
                "parameter shifts: preparing a state has no rotation angle to shift. Use "
                "projection='fixed' or 'none', encoding='angle', or gradient='adjoint' or "
                "'backprop'."
            )
        if executor is not None and (self.gradient, self.encoding) != ("parameter-shift", "angle"):
            raise SolverConfigurationError(
                "QuantumHead runs on hardware (executor=...) with gradient='parameter-shift' "
                "and encoding='angle': hardware gives no backprop or adjoint gradient, and "
                "an amplitude encoding would need its own state-preparation circuit per "
                f"example. Got gradient={self.gradient!r}, encoding={self.encoding!r}."
            )
        self.executor = executor
        self._check_memory(1, torch.device("cpu"))
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()  # nondeterministic, and the global generator is left alone
        else:
            generator.manual_seed(self.seed)
        # Every random draw in float64, then cast: a seed gives the same head in either
        # precision.

        def uniform(*shape: int, bound: float) -> torch.Tensor:
            draw = torch.rand(*shape, generator=generator, dtype=torch.float64)
            return ((2 * draw - 1) * bound).to(dtype_)

        bound = 1.0 / math.sqrt(in_features)
        self.projection: nn.Linear | None = None
        if self.projection_kind == "learned":
            self.projection = nn.Linear(in_features, width, dtype=dtype_)
            with torch.no_grad():
                self.projection.weight.copy_(uniform(width, in_features, bound=bound))
                self.projection.bias.copy_(uniform(width, bound=bound))
        if self.projection_kind == "fixed":
            fixed = torch.randn(width, in_features, generator=generator, dtype=torch.float64)
            self.register_buffer("fixed_projection", (fixed * bound).to(dtype_))
        # Small angles: the circuit starts near the encoding alone, away from the flat
        # landscapes (barren plateaus) of random deep circuits.
        weights = 0.1 * torch.randn(self.layers, n, 2, generator=generator, dtype=torch.float64)
        self.weights = nn.Parameter(weights.to(dtype_))
        self.readout = nn.Linear(n, num_classes, dtype=dtype_)
        with torch.no_grad():
            self.readout.weight.copy_(uniform(num_classes, n, bound=1.0 / math.sqrt(n)))
            self.readout.bias.zero_()
        pairs = {"ring": ring_pairs(n), "all": all_pairs(n), "none": []}[self.entangler]
        self.pairs = pairs
        self.register_buffer("entangler_signs", cz_signs(pairs, n, dtype=dtype_), persistent=False)
        self._shot_generator: torch.Generator | None = None

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this head (its architecture, not its
        trained values; ``executor`` left out): ``QuantumHead(**head.config())``, then
        ``load_state_dict``. JSON-ready, so it can travel in a checkpoint."""
        return {
            "in_features": self.in_features,
            "num_classes": self.num_classes,
            "num_qubits": self.num_qubits,
            "layers": self.layers,
            "encoding": self.encoding,
            "projection": self.projection_kind,
            "entangler": self.entangler,
            "gradient": self.gradient,
            "shots": self.shots,
            "dtype": self.dtype_name,
            "seed": self.seed,
        }

    def circuits_per_step(self, batch: int) -> int:
        """Circuits one training step runs on hardware (parameter shift): each example once,
        and once more per shift (``+pi/2`` and ``-pi/2``) of each of its rotations
        (``RZ``, ``RY`` and, with angle encoding, the re-uploaded ``RY(x)`` of every layer
        and qubit): ``batch x (1 + 2 x rotations)``, growing linearly in the qubits."""
        return batch * (1 + 2 * len(_shift_terms(self)))

    # Memory --------------------------------------------------------------------------------

    def states_held(self) -> int:
        """State vectors (of ``2^n`` amplitudes per example) the forward and backward hold.

        Backprop keeps every intermediate of every layer (each of its ``ceil(n / 4)`` block
        products, the CZ product, the encoding); the adjoint and parameter-shift methods a
        handful whatever the depth.
        """
        if self.gradient == "backprop":
            return self.layers * (math.ceil(self.num_qubits / 4) + 2) + 4
        return 6

    def memory_bytes(self, batch: int) -> int:
        """Bytes of state the head needs for a batch of ``batch`` examples."""
        amplitude = 8 if self.dtype_name == "float32" else 16
        return batch * (1 << self.num_qubits) * amplitude * self.states_held()

    def _check_memory(self, batch: int, device: torch.device) -> None:
        needed = self.memory_bytes(batch)
        free = available_memory(device)
        limit = _MEMORY_HEADROOM * free
        if needed <= limit:
            return
        per_qubit_state = self.memory_bytes(batch) / (1 << self.num_qubits)
        most = (
            max(0, math.floor(math.log2(limit / per_qubit_state)))
            if limit >= per_qubit_state
            else 0
        )
        raise ProblemTooLargeError(
            f"QuantumHead with {self.num_qubits} qubits needs about {needed / 2**30:.3g} GiB "
            f"for a batch of {batch} on {device} ({batch} x 2^{self.num_qubits} amplitudes x "
            f"{self.states_held()} states held by gradient={self.gradient!r}, "
            f"{self.dtype_name}); half of the {free / 2**30:.3g} GiB free is the limit, which "
            f"allows {most} qubits at this batch. Use fewer qubits, a smaller batch, "
            "gradient='adjoint' (a few states at any depth), dtype='float32', or a GPU."
        )

    # Forward -------------------------------------------------------------------------------

    def _check_features(self, features: Any) -> torch.Tensor:
        if not isinstance(features, torch.Tensor):
            raise InvalidInputError(
                f"QuantumHead expects a torch.Tensor of features. Got {type(features).__name__}; "
                "convert with torch.as_tensor(features)."
            )
        if features.dim() != 2 or features.shape[1] != self.in_features:
            raise InvalidInputError(
                f"QuantumHead expects features of shape (batch, {self.in_features}). Got "
                f"{tuple(features.shape)}: check the backbone's output width, or build the "
                f"head with in_features={features.shape[-1] if features.dim() else '...'}."
            )
        if not bool(torch.isfinite(features).all()):
            bad = int((~torch.isfinite(features)).any(dim=1).sum())
            raise InvalidInputError(
                f"QuantumHead got non-finite features (NaN or inf) in {bad} of "
                f"{features.shape[0]} examples. Clean or impute them before the head."
            )
        return features.to(self.weights.dtype)

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Projected features: ``(batch, n)`` angles, or ``(batch, 2^n)`` unit-norm amplitudes."""
        if self.projection is not None:
            projected = self.projection(features)
        elif self.projection_kind == "fixed":
            projected = features @ self.get_buffer("fixed_projection").T
        else:
            projected = features
        if self.encoding == "angle":
            return projected
        width = 1 << self.num_qubits
        if projected.shape[1] < width:
            projected = nn.functional.pad(projected, (0, width - projected.shape[1]))
        return projected / projected.norm(dim=1, keepdim=True).clamp_min(1e-30)

    def expectations(self, features: torch.Tensor) -> torch.Tensor:
        """``<Z_j>`` of every qubit for every example, ``(batch, n)``: the readout's input."""
        features = self._check_features(features)
        self._check_memory(features.shape[0], features.device)
        encoded = self.encode(features)
        if self.gradient == "backprop":
            exact = self.circuit(encoded, self.weights)
        elif self.gradient == "adjoint":
            exact = _AdjointCircuit.apply(self, encoded, self.weights)
        else:
            if self.encoding == "amplitude" and encoded.requires_grad:
                raise InvalidInputError(
                    "QuantumHead with gradient='parameter-shift' cannot pass gradients back to "
                    "amplitude-encoded features (state preparation has no angle to shift); "
                    "detach the features or use gradient='adjoint'."
                )
            needs_grad = torch.is_grad_enabled() and (
                encoded.requires_grad or self.weights.requires_grad
            )
            exact = _ParameterShiftCircuit.apply(self, encoded, self.weights, needs_grad)
        if self.shots is None or self.gradient == "parameter-shift":
            return exact
        # Straight-through: the sampled value forward, the exact gradient backward.
        return exact + (self.sample_shots(exact.detach()) - exact).detach()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, num_classes)``."""
        return self.readout(self.expectations(features))

    # The circuit ---------------------------------------------------------------------------

    def layer_gates(
        self, encoded: torch.Tensor | None, weights: torch.Tensor, layer: int
    ) -> torch.Tensor:
        """The single-qubit gates of one layer: ``RY(theta) RZ(phi) [RY(x)]`` per qubit.

        ``weights`` is ``(layers, n, 2)`` (shared) or ``(rows, layers, n, 2)``; ``encoded``
        angles ``(rows, n)`` or ``None``. Shape ``(n, 2, 2)`` when nothing varies by row,
        ``(rows, n, 2, 2)`` otherwise.
        """
        angles = weights[..., layer, :, :]
        gates = ry_matrix(angles[..., 1]) @ rz_matrix(angles[..., 0])
        if encoded is not None:
            gates = gates @ ry_matrix(encoded)
        return gates

    def initial_state(self, encoded: torch.Tensor) -> torch.Tensor:
        """``|0...0>`` per example (angle encoding) or the amplitudes themselves."""
        if self.encoding == "amplitude":
            return encoded.to(complex_dtype_of(encoded.dtype))
        batch = encoded.shape[0]
        return zero_state(self.num_qubits, batch=batch, dtype=encoded.dtype, device=encoded.device)

    def evolve(
        self,
        state: torch.Tensor,
        layer_angles: list[torch.Tensor | None],
        weights: torch.Tensor,
    ) -> torch.Tensor:
        """Run the ansatz on ``state``, layer ``l`` re-uploading ``layer_angles[l]``."""
        signs = self.get_buffer("entangler_signs").to(state.device)
        for layer in range(self.layers):
            gates = self.layer_gates(layer_angles[layer], weights, layer)
            state = apply_single_qubit_layer(state, gates)
            if self.pairs:
                state = state * signs
        return state

    def circuit_state(self, encoded: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The final state of every example, ``(batch, 2^n)``; differentiable."""
        angles = encoded if self.encoding == "angle" else None
        return self.evolve(self.initial_state(encoded), [angles] * self.layers, weights)

    def circuit(self, encoded: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``<Z_j>`` per row: the circuit run on ``encoded`` with ``weights``; differentiable."""
        return z_expectations(self.circuit_state(encoded, weights))

    def executor_active(self) -> bool:
        """Whether circuits go to the executor (one is set and has not failed)."""
        return self.executor is not None and self.executor.fallback is None

    def evaluate_rows(
        self, encoded: torch.Tensor, weights: torch.Tensor, angles: torch.Tensor | None
    ) -> torch.Tensor:
        """``<Z_j>`` of ``copies x rows`` circuits, ``(copies * rows, n)``: on the executor
        as one job when there is one, otherwise simulated (with shot noise when ``shots``).

        ``weights`` is ``(copies, rows, L, n, 2)``; ``angles`` ``(copies, rows, L, n)``, or
        ``None`` for amplitude encoding. A failing executor is reported once and replaced by
        the simulator for the rest of the run.
        """
        if self.executor is not None and self.executor.fallback is None and angles is not None:
            n = self.num_qubits
            try:
                return self.executor.expectations(
                    self,
                    angles.reshape(-1, self.layers, n),
                    weights.reshape(-1, self.layers, n, 2),
                )
            except Exception as error:  # any backend failure: training goes on
                self.executor.fallback = f"{type(error).__name__}: {error}"
                warnings.warn(
                    f"QuantumHead's executor failed ({self.executor.fallback}); the head goes "
                    "on with its exact simulator for the rest of the run "
                    "(executor.fallback records why).",
                    RuntimeWarning,
                    stacklevel=2,
                )
        values = _run_shifted(self, encoded, weights, angles)
        return values if self.shots is None else self.sample_shots(values)

    def sample_shots(self, exact: torch.Tensor) -> torch.Tensor:
        """``shots`` simulated measurements of each ``<Z_j>``, averaged (see module docstring)."""
        assert self.shots is not None
        if self._shot_generator is None or self._shot_generator.device != exact.device:
            self._shot_generator = torch.Generator(device=exact.device)
            if self.seed is None:
                self._shot_generator.seed()
            else:
                self._shot_generator.manual_seed(self.seed)
        probability_one = ((1.0 - exact) / 2).clamp(0.0, 1.0)
        count = torch.full_like(probability_one, float(self.shots))
        ones = torch.binomial(count, probability_one, generator=self._shot_generator)
        return 1.0 - 2.0 * ones / self.shots

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"num_qubits={self.num_qubits}, layers={self.layers}, encoding={self.encoding!r}, "
            f"projection={self.projection_kind!r}, entangler={self.entangler!r}, "
            f"gradient={self.gradient!r}, shots={self.shots}, dtype={self.dtype_name!r}"
        )


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise SolverConfigurationError(
            f"The '{name}' parameter of QuantumHead must be one of "
            f"{', '.join(repr(c) for c in choices)}. Got {value!r} instead."
        )
    return str(value)


class _AdjointCircuit(torch.autograd.Function):
    """``<Z_j>`` with the gradient of the adjoint method (see the module docstring)."""

    @staticmethod
    def forward(
        ctx: Any, head: QuantumHead, encoded: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad():
            state = head.circuit_state(encoded, weights)
        ctx.head = head
        ctx.save_for_backward(encoded, weights, state)
        return z_expectations(state)

    @staticmethod
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[None, torch.Tensor | None, torch.Tensor]:
        head: QuantumHead = ctx.head
        encoded, weights, state = ctx.saved_tensors
        n, rows = head.num_qubits, state.shape[0]
        with torch.no_grad():
            z_table = z_eigenvalues(n, state.real.dtype, state.device)  # (2^n, n)
            observable = grad_output.to(state.real.dtype) @ z_table.T
            # psi and lam ride in one tensor of 2 * rows rows: each layer moves both at once.
            pair = torch.cat([state, observable * state])
            to_z_basis = _y_to_z_basis(n, state.dtype, state.device)
            signs = head.get_buffer("entangler_signs").to(state.device)

            def z_derivatives(pair: torch.Tensor) -> torch.Tensor:
                """``Im <lam|Z_j|psi>`` for every row and qubit, ``(rows, n)``: one product."""
                return (pair[rows:].conj() * pair[:rows]).imag @ z_table

            def y_derivatives(pair: torch.Tensor) -> torch.Tensor:
                """``Im <lam|Y_j|psi>``: ``U = H S^dagger`` on every qubit turns ``Y`` into ``Z``."""
                return z_derivatives(apply_single_qubit_layer(pair, to_z_basis))

            # Gates on different qubits commute, so each sublayer's derivatives are read for
            # all qubits at once, at the point where that sublayer ends.
            grad_weights = torch.zeros_like(weights)
            grad_encoded = torch.zeros_like(encoded) if head.encoding == "angle" else None
            for layer in reversed(range(head.layers)):
                if head.pairs:
                    pair = pair * signs
                grad_weights[layer, :, 1] = y_derivatives(pair).sum(dim=0)
                pair = apply_single_qubit_layer(pair, ry_matrix(-weights[layer, :, 1]))
                grad_weights[layer, :, 0] = z_derivatives(pair).sum(dim=0)
                pair = apply_single_qubit_layer(pair, rz_matrix(-weights[layer, :, 0]))
                if grad_encoded is not None:
                    grad_encoded += y_derivatives(pair)
                    pair = apply_single_qubit_layer(pair, ry_matrix(-encoded).repeat(2, 1, 1, 1))
            if head.encoding == "amplitude":
                # L = <a|A|a> for real amplitudes a: dL/da = 2 Re(A a), and A a is lam now.
                grad_encoded = 2.0 * pair[rows:].real.to(encoded.dtype)
        return None, grad_encoded, grad_weights


@functools.lru_cache(maxsize=8)
def _y_to_z_basis(num_qubits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``H S^dagger`` on each of ``num_qubits`` qubits, ``(n, 2, 2)``: it maps ``Y`` to ``Z``."""
    root = 1 / math.sqrt(2)
    gate = torch.tensor([[root, -1j * root], [root, 1j * root]], dtype=dtype, device=device)
    return gate.expand(num_qubits, 2, 2)


class _ParameterShiftCircuit(torch.autograd.Function):
    """``<Z_j>`` with the gradient of the parameter-shift rule (see the module docstring).

    With an executor and a gradient to compute, the batch and all its shifted circuits go
    out in the forward pass as one job, and the backward pass only combines the results.
    """

    @staticmethod
    def forward(
        ctx: Any,
        head: QuantumHead,
        encoded: torch.Tensor,
        weights: torch.Tensor,
        needs_grad: bool,
    ) -> torch.Tensor:
        ctx.head = head
        ctx.derivatives = None
        ctx.save_for_backward(encoded, weights)
        with torch.no_grad():
            if head.executor_active() and needs_grad:
                terms = _shift_terms(head)
                shifted_weights, shifted_angles = _shifted_rows(head, encoded, weights, terms)
                unshifted = weights.expand(1, encoded.shape[0], *weights.shape)
                angles = _layer_angles(head, encoded)
                assert angles is not None and shifted_angles is not None  # angle encoding
                values = head.evaluate_rows(
                    encoded,
                    torch.cat([unshifted, shifted_weights]),
                    torch.cat([angles, shifted_angles]),
                )
                values = values.view(1 + 2 * len(terms), encoded.shape[0], head.num_qubits)
                ctx.derivatives = (values[1::2] - values[2::2]) / 2
                return values[0]
            single_weights = weights.expand(1, encoded.shape[0], *weights.shape)
            angles = _layer_angles(head, encoded)
            return head.evaluate_rows(encoded, single_weights, angles)

    @staticmethod
    def backward(
        ctx: Any, grad_output: torch.Tensor
    ) -> tuple[None, torch.Tensor | None, torch.Tensor, None]:
        head: QuantumHead = ctx.head
        encoded, weights = ctx.saved_tensors
        terms = _shift_terms(head)
        rows = encoded.shape[0]
        grad_weights = torch.zeros_like(weights)
        grad_encoded = torch.zeros_like(encoded) if head.encoding == "angle" else None
        if ctx.derivatives is not None:
            chunks = [(terms, ctx.derivatives)]
        else:
            per_chunk = max(1, _SHIFT_CHUNK_AMPLITUDES // (2 * rows * (1 << head.num_qubits)))
            chunks = []
            with torch.no_grad():
                for start in range(0, len(terms), per_chunk):
                    chunk = terms[start : start + per_chunk]
                    shifted = _shifted_rows(head, encoded, weights, chunk)
                    values = head.evaluate_rows(encoded, *shifted)
                    values = values.view(2 * len(chunk), rows, head.num_qubits)
                    chunks.append((chunk, (values[0::2] - values[1::2]) / 2))
        for chunk, derivatives in chunks:
            contributions = (derivatives * grad_output).sum(dim=2)  # (terms, rows)
            for index, (layer, qubit, which) in enumerate(chunk):
                if which < 2:
                    grad_weights[layer, qubit, which] += contributions[index].sum()
                else:
                    assert grad_encoded is not None
                    grad_encoded[:, qubit] += contributions[index]
        return None, grad_encoded, grad_weights, None


def _shift_terms(head: QuantumHead) -> list[tuple[int, int, int]]:
    """Every rotation to shift: ``(layer, qubit, which)``, which 0 = RZ, 1 = RY, 2 = RY(x)."""
    kinds = range(3) if head.encoding == "angle" else range(2)
    return [
        (layer, qubit, which)
        for layer in range(head.layers)
        for qubit in range(head.num_qubits)
        for which in kinds
    ]


def _layer_angles(head: QuantumHead, encoded: torch.Tensor) -> torch.Tensor | None:
    """The encoded angles of every layer, ``(1, rows, layers, n)`` (``None``: amplitudes)."""
    if head.encoding != "angle":
        return None
    return encoded[None, :, None, :].expand(1, encoded.shape[0], head.layers, head.num_qubits)


def _shifted_rows(
    head: QuantumHead,
    encoded: torch.Tensor,
    weights: torch.Tensor,
    terms: list[tuple[int, int, int]],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Weights ``(2T, rows, L, n, 2)`` and angles ``(2T, rows, L, n)`` of the circuits that
    shift each term by ``+pi/2`` then ``-pi/2``, each a copy of the whole batch."""
    count, rows = 2 * len(terms), encoded.shape[0]
    shifted_weights = weights.expand(count, rows, *weights.shape).clone()
    base = _layer_angles(head, encoded)
    shifted_angles = None if base is None else base.expand(count, *base.shape[1:]).clone()
    for index, (layer, qubit, which) in enumerate(terms):
        for offset, sign in ((0, 1.0), (1, -1.0)):
            if which < 2:
                shifted_weights[2 * index + offset, :, layer, qubit, which] += sign * math.pi / 2
            else:
                assert shifted_angles is not None
                shifted_angles[2 * index + offset, :, layer, qubit] += sign * math.pi / 2
    return shifted_weights, shifted_angles


def _run_shifted(
    head: QuantumHead,
    encoded: torch.Tensor,
    weights: torch.Tensor,
    angles: torch.Tensor | None,
) -> torch.Tensor:
    """``<Z_j>`` of ``copies x rows`` circuits in one simulation: weights
    ``(copies, rows, L, n, 2)``, angles ``(copies, rows, L, n)`` (each layer its own
    encoding, so one can be shifted) or ``None`` for amplitude encoding."""
    copies, rows = weights.shape[0], weights.shape[1]
    n = head.num_qubits
    flat_weights = weights.reshape(copies * rows, head.layers, n, 2)
    if angles is None:
        initial = head.initial_state(encoded).repeat(copies, 1)
        return z_expectations(head.evolve(initial, [None] * head.layers, flat_weights))
    initial = head.initial_state(encoded.repeat(copies, 1))
    flat_angles = angles.reshape(copies * rows, head.layers, n)
    layer_angles: list[torch.Tensor | None] = [
        flat_angles[:, layer] for layer in range(head.layers)
    ]
    return z_expectations(head.evolve(initial, layer_angles, flat_weights))
