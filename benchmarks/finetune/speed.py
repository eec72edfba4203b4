"""Time one training epoch of the quantum head: qopt's QuantumHead against PennyLane.

The same circuit in each arm (angle encoding RY(x) re-uploaded before every layer; per layer
RZ then RY on every qubit and a ring of CZ gates; <Z> of every qubit; a learned projection
before and a linear readout after), the same batch and the same optimizer (Adam, lr 0.05,
cross-entropy). An epoch is ``--examples`` random feature vectors in batches of
``--batch``. Arms:

- ``qopt[backprop]``, ``qopt[adjoint]`` (float32 and float64), ``qopt[parameter-shift]``
  (with ``--shift``): :class:`qopt.circuits.QuantumHead`, one batched simulation per step;
- ``pennylane[default.qubit]``: ``qml.qnn.TorchLayer`` on ``default.qubit`` with
  ``diff_method="backprop"`` (complex128, parameter broadcasting over the batch);
- ``pennylane[lightning.qubit]``: the same layer on ``lightning.qubit`` (C++) with
  ``diff_method="adjoint"`` (with ``--lightning``).

Before timing, the gradients of every parameter on the first batch (float64, the same
parameter values copied into every arm) are compared with qopt's backprop: the maximum
absolute difference is printed and stored. Each epoch is timed ``--repeats`` times after a
warm-up epoch; the table gives the median [min, max] wall time per epoch and the ratio to the
PennyLane backprop arm.

    python benchmarks/finetune/speed.py --qubits 8 12 --batch 64 --examples 256 --repeats 3

PennyLane is not a qopt dependency: without it only the qopt arms run (pip install
pennylane). Timings depend on the machine and its load: the JSON file records the machine,
the commit, torch's thread count and the arguments.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from qopt.bench import format_spread, machine_info, results_path, write_results
from qopt.circuits import QuantumHead
from qopt.circuits.statevector import ring_pairs


def pennylane_model(head: QuantumHead, device_name: str, diff_method: str) -> nn.Module | None:
    """The head's circuit as a PennyLane TorchLayer between copies of its projection and
    readout (float64), or ``None`` without PennyLane."""
    try:
        import pennylane as qml
    except ImportError:
        return None
    n, layers = head.num_qubits, head.layers
    device = qml.device(device_name, wires=n)
    pairs = ring_pairs(n)

    @qml.qnode(device, interface="torch", diff_method=diff_method)
    def circuit(inputs: torch.Tensor, weights: torch.Tensor) -> list[Any]:
        for layer in range(layers):
            for wire in range(n):
                qml.RY(inputs[..., wire], wires=wire)
                qml.RZ(weights[layer, wire, 0], wires=wire)
                qml.RY(weights[layer, wire, 1], wires=wire)
            for a, b in pairs:
                qml.CZ(wires=[a, b])
        return [qml.expval(qml.PauliZ(wire)) for wire in range(n)]

    quantum = qml.qnn.TorchLayer(circuit, {"weights": (layers, n, 2)})
    assert head.projection is not None
    projection = nn.Linear(head.in_features, n, dtype=torch.float64)
    readout = nn.Linear(n, head.num_classes, dtype=torch.float64)
    with torch.no_grad():
        projection.load_state_dict({k: v.double() for k, v in head.projection.state_dict().items()})
        readout.load_state_dict({k: v.double() for k, v in head.readout.state_dict().items()})
        quantum.weights.copy_(head.weights.double())

    class Stacked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.projection, self.quantum, self.readout = projection, quantum, readout

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.quantum(self.projection(x))
            if isinstance(z, (list, tuple)):
                z = torch.stack(list(z), dim=-1)
            return self.readout(z.to(torch.float64))

    return Stacked()


def gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Gradients of the loss on one batch, in the order projection, circuit, readout."""
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    named = dict(model.named_parameters())
    order = ["projection.weight", "projection.bias", "weights", "readout.weight", "readout.bias"]
    found = []
    for key in order:
        match = next(v for k, v in named.items() if k.endswith(key))
        assert match.grad is not None
        found.append(match.grad.detach().double().clone())
    return found


def epoch_seconds(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int, repeats: int
) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)

    def epoch() -> None:
        for start in range(0, x.shape[0], batch):
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(
                model(x[start : start + batch]), y[start : start + batch]
            )
            loss.backward()
            optimizer.step()

    epoch()  # warm-up: first calls build caches and compile nothing else
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return times


def arm_builders(
    reference: QuantumHead, *, shift: bool, lightning: bool
) -> dict[str, Callable[[], nn.Module | None]]:
    """Each arm's name and a function building it with ``reference``'s parameters."""

    def qopt_head(gradient: str, dtype: str) -> nn.Module:
        head = QuantumHead(
            reference.in_features,
            reference.num_classes,
            num_qubits=reference.num_qubits,
            layers=reference.layers,
            gradient=gradient,  # type: ignore[arg-type]
            dtype=dtype,
            seed=0,
        )
        state = {k: v.to(head.weights.dtype) for k, v in reference.state_dict().items()}
        head.load_state_dict(state)
        return head

    arms: dict[str, Callable[[], nn.Module | None]] = {}
    for gradient in ("backprop", "adjoint", *(("parameter-shift",) if shift else ())):
        for dtype in ("float64", "float32"):
            if gradient != "parameter-shift" or dtype == "float64":
                arms[f"qopt[{gradient}, {dtype}]"] = functools.partial(qopt_head, gradient, dtype)
    arms["pennylane[default.qubit, backprop]"] = lambda: pennylane_model(
        reference, "default.qubit", "backprop"
    )
    if lightning:
        arms["pennylane[lightning.qubit, adjoint]"] = lambda: pennylane_model(
            reference, "lightning.qubit", "adjoint"
        )
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--qubits", type=int, nargs="+", default=[8, 12])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--features", type=int, default=32)
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--shift", action="store_true", help="also time parameter shift")
    parser.add_argument(
        "--lightning", action="store_true", help="also time lightning.qubit (adjoint)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(args.seed)
    rows: list[dict[str, Any]] = []
    for n in args.qubits:
        x64 = torch.randn(args.examples, args.features, generator=generator, dtype=torch.float64)
        y = (x64[:, 0] > 0).long()
        reference = QuantumHead(
            args.features, 2, num_qubits=n, layers=args.layers, dtype="float64", seed=args.seed
        )
        with torch.no_grad():  # angles away from the small start, so gradients are not tiny
            reference.weights.uniform_(-3, 3, generator=torch.Generator().manual_seed(args.seed))
        arms = arm_builders(reference, shift=args.shift, lightning=args.lightning)
        expected = gradients(reference, x64[: args.batch], y[: args.batch])
        for name, build_arm in arms.items():
            model = build_arm()
            if model is None:
                print(f"{name}: not installed here (pip install pennylane); skipped")
                continue
            dtype = next(model.parameters()).dtype
            x = x64.to(dtype)
            got = gradients(model, x[: args.batch], y[: args.batch])
            error = max(float((g - e).abs().max()) for g, e in zip(got, expected, strict=True))
            times = epoch_seconds(model, x, y, args.batch, args.repeats)
            rows.append(
                {"qubits": n, "arm": name, "epoch_s": times, "max_gradient_difference": error}
            )
            print(
                f"n={n:<3} {name:<40} {format_spread(times, 3):>24} s/epoch   max |grad - qopt backprop float64| {error:.2e}",
                flush=True,
            )
    print()
    print(f"{'n':<4}{'arm':<42}{'s per epoch':>26}{'x faster than PennyLane backprop':>34}")
    for n in args.qubits:
        baseline = [
            r for r in rows if r["qubits"] == n and r["arm"].startswith("pennylane[default")
        ]
        base = statistics.median(baseline[0]["epoch_s"]) if baseline else None
        for row in (r for r in rows if r["qubits"] == n):
            median = statistics.median(row["epoch_s"])
            ratio = f"{base / median:.1f}" if base else "n/a"
            print(f"{n:<4}{row['arm']:<42}{format_spread(row['epoch_s'], 3):>26}{ratio:>34}")
    machine = {
        **machine_info(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    try:
        import pennylane as qml

        machine["pennylane"] = qml.__version__
    except ImportError:
        pass
    path = write_results(
        args.out or results_path("benchmarks/results", "finetune-speed"),
        {"machine": machine, "arguments": vars(args), "runs": rows},
    )
    print(f"\nmachine: {machine}\nraw results: {path}")


if __name__ == "__main__":
    main()
