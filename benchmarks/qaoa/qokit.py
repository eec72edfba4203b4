"""One QAOA expectation: qopt's statevector engine against QOKit's C simulator, side by side.

QOKit (Lykov et al., SC-W 2023) simulates QAOA with a C kernel (``libcsim.so``). Its 0.1.4
package falls back to pure Python where ``libcsim.so`` is missing (the wheel ships the
compiled kernels under another name and the sdist lacks the headers), so this script calls
the C kernel itself through ctypes, QOKit's fastest path, with no Python wrapper overhead:

    pip download --no-deps qokit==0.1.4   # or the sdist; the sources are qokit/fur/c/csim/src/*.c
    # write fur.h, diagonal.h, qaoa_fur.h with the prototypes of the .c files, then
    gcc -O3 -fopenmp -march=native -fPIC -shared -I. fur.c diagonal.c qaoa_fur.c -o libcsim.so -lm

    python benchmarks/qaoa/qokit.py --libcsim path/to/libcsim.so --sizes 12 16 20 24 --reps 3

Both arms evaluate the same angles on the same 3-regular MaxCut instances (and, with
``--fields``, an Ising model with random fields, where qopt cannot store half the state) in
float64; the values must agree to 1e-10 (relative) and are checked. QOKit's convention is
``exp(-i beta X)`` mixers and ``exp(-i gamma C / 2)`` phases on the raw cost, qopt's
``exp(i beta X)`` and ``exp(-i gamma C')`` on the cost scaled to unit couplings, so QOKit
runs at ``gamma_qokit = 2 gamma / scale`` and ``beta_qokit = -beta``. Times are the median of
``--repeats`` calls after one warm-up: for QOKit, a fresh uniform state, the C kernel and
``costs . |psi|^2``; for qopt, ``QAOASimulator.expectation`` (the simulator built once, as
``qaoa_expectation`` reuses it). Set OMP_NUM_THREADS and ``--threads`` alike.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import statistics
import time
from typing import Any

import dimod
import numpy as np
import torch
from numpy.ctypeslib import ndpointer

from qopt.bench import machine_info, results_path, write_results
from qopt.problems.maxcut import random_regular_graph
from qopt.solvers.qaoa import QAOASimulator, qaoa_cost_diagonal


def load_qokit(path: str) -> Any:
    lib = ctypes.cdll.LoadLibrary(path)
    function = lib.apply_qaoa_furx
    function.restype = None
    vector = ndpointer(ctypes.c_double, flags="C_CONTIGUOUS")
    function.argtypes = [vector] * 5 + [ctypes.c_uint, ctypes.c_size_t, ctypes.c_size_t]
    return function


def instance(n: int, seed: int, fields: bool) -> dimod.BinaryQuadraticModel:
    edges = [(int(u), int(v)) for u, v in random_regular_graph(n, 3, seed=seed)]
    if not fields:
        return dimod.BinaryQuadraticModel.from_ising({}, {e: 1.0 for e in edges})
    rng = np.random.default_rng(seed)
    return dimod.BinaryQuadraticModel.from_ising(
        {i: float(rng.choice([-1.0, 1.0])) for i in range(n)}, {e: 1.0 for e in edges}
    )


def qokit_expectation(furx: Any, costs: np.ndarray, gammas: np.ndarray, betas: np.ndarray) -> float:
    """QOKit's QAOA expectation: a fresh ``|+>^n``, the C kernel, ``costs . |psi|^2``."""
    size = costs.size
    real = np.full(size, size**-0.5)
    imag = np.zeros(size)
    furx(real, imag, gammas, betas, costs, size.bit_length() - 1, size, gammas.size)
    return float(np.dot(costs, real * real + imag * imag))


def median_seconds(call: Any, repeats: int) -> tuple[float, Any]:
    value = call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--libcsim", required=True, help="QOKit's compiled C kernel")
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 16, 20, 24])
    parser.add_argument("--reps", type=int, default=3, help="QAOA depth p")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--fields", action="store_true", help="also Ising models with fields")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    furx = load_qokit(args.libcsim)
    rng = np.random.default_rng(args.seed)
    gammas, betas = rng.uniform(0.1, 0.8, args.reps), rng.uniform(0.1, 0.8, args.reps)
    rows = []
    print(
        f"{'n':<4}{'problem':<10}{'qokit C ms':>12}{'qopt ms':>10}{'qokit/qopt':>12}{'rel. diff':>12}"
    )
    for n in args.sizes:
        for fields in (False, True) if args.fields else (False,):
            bqm = instance(n, args.seed, fields)
            simulator = QAOASimulator(bqm, dtype="float64")
            costs = qaoa_cost_diagonal(bqm).numpy()
            qokit_gammas = np.ascontiguousarray(2 * gammas / simulator.scale)
            qokit_betas = np.ascontiguousarray(-betas)

            qokit_s, qokit_value = median_seconds(
                functools.partial(qokit_expectation, furx, costs, qokit_gammas, qokit_betas),
                args.repeats,
            )
            qopt_s, qopt_value = median_seconds(
                functools.partial(simulator.expectation, gammas, betas), args.repeats
            )
            difference = abs(qokit_value - qopt_value) / max(1.0, abs(qokit_value))
            assert difference < 1e-10, (n, fields, qokit_value, qopt_value)
            name = "fields" if fields else "maxcut"
            rows.append(
                {
                    "qubits": n,
                    "problem": name,
                    "qokit_s": qokit_s,
                    "qopt_s": qopt_s,
                    "qokit_value": qokit_value,
                    "qopt_value": qopt_value,
                }
            )
            print(
                f"{n:<4}{name:<10}{qokit_s * 1e3:>12.3f}{qopt_s * 1e3:>10.3f}{qokit_s / qopt_s:>12.2f}{difference:>12.1e}",
                flush=True,
            )
    machine = {
        **machine_info(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    path = write_results(
        args.out or results_path("benchmarks/results", "qaoa-qokit"),
        {"machine": machine, "arguments": vars(args), "runs": rows},
    )
    print(f"\nmachine: {machine}\nraw results: {path}")


if __name__ == "__main__":
    main()
