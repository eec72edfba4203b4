"""``qopt breakeven``: the energy break-even of the quantum head on the machine at hand.

The command's arguments are declared in :mod:`qopt.cli` (so that ``qopt --help`` does not
import torch); this module runs it.
"""

from __future__ import annotations

import argparse
from typing import TextIO

from qopt.circuits.breakeven import (
    QPU_INPUTS,
    QPUEnergyModel,
    break_even,
    check_uncertainty,
    classical_reference,
    measure_training_step,
)
from qopt.exceptions import SolverConfigurationError

__all__ = ["breakeven_command", "parse_ranges"]


def parse_ranges(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``["system_watts=10000:50000", ...]`` -> ``{"system_watts": (10000.0, 50000.0)}``.

    Raises:
        SolverConfigurationError: An item is not ``NAME=LOW:HIGH`` with numbers.
    """
    ranges = {}
    for item in items or []:
        name, _, span = item.partition("=")
        low, _, high = span.partition(":")
        try:
            ranges[name.strip().replace("-", "_")] = (float(low), float(high))
        except ValueError:
            raise SolverConfigurationError(
                f"--range takes NAME=LOW:HIGH with NAME one of {', '.join(QPU_INPUTS)}. "
                f"Got {item!r} instead."
            ) from None
    return ranges


def breakeven_command(args: argparse.Namespace, out: TextIO) -> int:
    """Measure, fit, intersect, print the table (and write the plot); return 0."""
    qpu = QPUEnergyModel(
        system_watts=args.qpu_watts,
        shot_seconds=args.shot_seconds,
        job_overhead_seconds=args.job_overhead_seconds,
        shots=args.shots,
    )
    ranges = check_uncertainty(parse_ranges(args.range))  # before the minutes of measuring
    cost = measure_training_step(
        args.qubits, batch=args.batch, layers=args.layers, repeats=args.repeats, device=args.device
    )
    classical = None if args.no_classical else classical_reference()
    result = break_even(
        cost, qpu, uncertainty=ranges, from_qubits=args.fit_from, classical=classical
    )
    out.write(result.table() + "\n")
    if args.json:
        from qopt.bench import write_results

        written = write_results(args.json, {"break_even": result, "table": result.table()})
        out.write(f"raw results written to {written}\n")
    if args.plot:
        out.write(f"plot written: {result.plot(args.plot)}\n")
    return 0
