"""A short study for ``qopt demo``: QuboSampler beside TPE on a QUBO with a known optimum."""

from __future__ import annotations

import itertools
from typing import Any, TextIO

import numpy as np

from qopt._validation import check_int

__all__ = ["demo_study", "print_sampler_demo", "random_qubo_objective"]


def random_qubo_objective(
    n_bits: int = 16, *, seed: int = 0, density: float = 0.3
) -> tuple[np.ndarray, float]:
    """A random QUBO matrix (upper triangular, ``N(0, 1)`` entries on a random sparse pattern)
    and its exact minimum, found by enumerating all ``2^n_bits`` states.

    Examples:
        >>> Q, optimum = random_qubo_objective(8, seed=1)
        >>> Q.shape, optimum < 0
        ((8, 8), True)
    """
    n_bits = check_int(n_bits, "n_bits", "random_qubo_objective", low=1, high=22)
    rng = np.random.default_rng(seed)
    Q = np.triu(rng.normal(size=(n_bits, n_bits)))
    mask = np.triu(rng.random((n_bits, n_bits)) < density, k=1) | np.eye(n_bits, dtype=bool)
    Q = Q * mask
    states = np.array(list(itertools.product((0, 1), repeat=n_bits)), dtype=float)
    energies = np.einsum("si,ij,sj->s", states, Q, states)
    return Q, float(energies.min())


def demo_study(n_trials: int = 40, seed: int = 0, *, n_bits: int = 16) -> dict[str, Any]:
    """Minimize a random ``n_bits``-bit QUBO (one 0/1 parameter per bit) with QuboSampler and
    with TPE (``multivariate=True``), ``n_trials`` each, and return both best values.

    Returns:
        ``{"optimum", "qubo_sampler", "tpe", "n_trials", "n_bits", "seed"}``: the enumerated
        optimum and each sampler's best value (lower is better).

    Examples:
        >>> from qopt.integrations.optuna import demo_study
        >>> result = demo_study(n_trials=12, seed=0, n_bits=6)
        >>> sorted(result)
        ['n_bits', 'n_trials', 'optimum', 'qubo_sampler', 'seed', 'tpe']
        >>> result["qubo_sampler"] >= result["optimum"]
        True
    """
    import optuna
    from qopt.integrations.optuna._sampler import QuboSampler

    n_trials = check_int(n_trials, "n_trials", "demo_study", low=1)
    Q, optimum = random_qubo_objective(n_bits, seed=seed)

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_int(f"x{i}", 0, 1) for i in range(n_bits)], dtype=float)
        return float(x @ Q @ x)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        results: dict[str, Any] = {
            "optimum": optimum,
            "n_trials": n_trials,
            "n_bits": n_bits,
            "seed": seed,
        }
        samplers = {
            "qubo_sampler": QuboSampler(seed=seed, n_startup_trials=min(10, n_trials)),
            "tpe": optuna.samplers.TPESampler(seed=seed, multivariate=True),
        }
        for name, sampler in samplers.items():
            study = optuna.create_study(sampler=sampler)
            study.optimize(objective, n_trials=n_trials)
            results[name] = float(study.best_value)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return results


def print_sampler_demo(out: TextIO, *, quick: bool = False, seed: int = 0) -> None:
    """Run :func:`demo_study` and print its comparison: the Optuna section of ``qopt demo``
    (``qopt.demo.SECTIONS`` names it)."""
    trials = 25 if quick else 40
    result = demo_study(n_trials=trials, seed=seed)
    out.write(
        f"Hyperparameter search: {trials} trials on a random 16-bit QUBO objective whose optimum, "
        f"{result['optimum']:g}, is known by enumeration\n"
    )
    out.write(f"  {'sampler':<32} {'best value':>10}\n")
    out.write(f"  {'QuboSampler (FM surrogate, sa)':<32} {result['qubo_sampler']:>10g}\n")
    out.write(f"  {'TPE (multivariate)':<32} {result['tpe']:>10g}\n")
    out.write("  one seed: see docs/optuna.md and benchmarks/sampler for medians over seeds.\n")
