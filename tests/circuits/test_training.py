from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from qopt.circuits import QuantumHead
from qopt.circuits.training import HeadFitRecord, fit_head
from qopt.exceptions import InvalidInputError, SolverConfigurationError


def standardized_split(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, ...]:
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_test), y_train, y_test


def test_head_learns_breast_cancer_well_above_chance() -> None:
    # 569 tumours, 30 features, two classes (63% benign): a real dataset shipped with sklearn.
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = standardized_split(data.data, data.target, seed=0)
    head, record = fit_head(
        x_train,
        y_train,
        validation=(x_test, y_test),
        num_qubits=4,
        layers=2,
        epochs=20,
        seed=0,
        target_accuracy=0.9,
    )
    assert isinstance(head, QuantumHead) and isinstance(record, HeadFitRecord)
    majority = max(np.mean(y_test), 1 - np.mean(y_test))
    assert record.validation_accuracy is not None
    assert record.validation_accuracy >= 0.9 > majority + 0.2
    assert record.train_accuracy >= 0.9
    assert record.losses[-1] < record.losses[0]  # it trained
    assert record.meter.wall_s > 0 and record.meter.cpu_s > 0
    assert record.meter.energy.provenance in ("measured", "estimated")
    assert record.meter.energy.method  # the counter or the model, named
    assert record.num_parameters == sum(p.numel() for p in head.parameters())
    # Time and energy to the target: the epochs until the curve first reached 0.9.
    assert len(record.validation_curve) == 20
    assert record.validation_curve[-1] == record.validation_accuracy
    first = next(i for i, a in enumerate(record.validation_curve) if a >= 0.9)
    assert first < 19  # reached before the end, so the figures below are a prefix
    assert record.time_to_target_s is not None and record.energy_to_target is not None
    assert 0 < record.time_to_target_s < record.meter.wall_s
    assert record.energy_to_target.provenance == record.meter.energy.provenance
    assert record.energy_to_target.joules is not None and record.meter.energy.joules is not None
    assert 0 < record.energy_to_target.joules < record.meter.energy.joules


def test_head_separates_two_digits_with_amplitude_encoding_and_adjoint_gradients() -> None:
    # 8 x 8 images of 3s and 8s, 64 pixels: amplitude encoding puts each image on 6 qubits
    # as it is (its pixel intensities, normalized, are the amplitudes; no standardizing,
    # which would make the direction of the vector, all the state keeps, uninformative).
    digits = load_digits()
    keep = np.isin(digits.target, [3, 8])
    x, y = digits.data[keep], (digits.target[keep] == 8).astype(int)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, random_state=1, stratify=y
    )
    _, record = fit_head(
        x_train,
        y_train,
        validation=(x_test, y_test),
        num_qubits=6,
        layers=2,
        encoding="amplitude",
        projection="none",
        gradient="adjoint",
        epochs=15,
        seed=1,
    )
    assert record.validation_accuracy is not None and record.validation_accuracy >= 0.9


def test_a_given_head_trains_further_and_bad_labels_are_refused() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    head = QuantumHead(3, 2, num_qubits=2, seed=0)
    threads = torch.get_num_threads()
    trained, _ = fit_head(x, y, head=head, epochs=2)  # on one thread (2 qubits), then restored
    assert trained is head
    assert torch.get_num_threads() == threads
    with pytest.raises(InvalidInputError, match="one integer label per example"):
        fit_head(x, y[:-1])
    with pytest.raises(InvalidInputError, match="integer class labels"):
        fit_head(x, y + 0.5)
    with pytest.raises(InvalidInputError, match="label 2 for a head of 2 classes"):
        fit_head(x, np.where(y == 1, 2, 0), head=head)
    with pytest.raises(InvalidInputError, match="head options"):
        fit_head(x, y, head=head, num_qubits=3)
    _, record = fit_head(x, y, validation=(x, 1 - y), target_accuracy=0.99, num_qubits=2, epochs=2)
    assert record.time_to_target_s is None and record.energy_to_target is None  # never reached
    with pytest.raises(SolverConfigurationError, match="no validation"):
        fit_head(x, y, target_accuracy=0.9)
    with pytest.raises(InvalidInputError, match="2-D"):
        fit_head(x[:, 0], y)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="non-finite"):
        fit_head(bad, y, num_qubits=2, epochs=1)
    assert torch.isfinite(head.weights).all()


def test_a_linear_probe_trains_by_the_same_loop_and_the_best_epoch_is_restored() -> None:
    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = standardized_split(data.data, data.target, seed=2)
    torch.manual_seed(0)
    probe = torch.nn.Linear(x_train.shape[1], 2)
    trained, record = fit_head(
        x_train,
        y_train,
        head=probe,
        validation=(x_test, y_test),
        epochs=8,
        learning_rate=0.5,  # large steps: the validation curve is not monotone
        restore_best_weights=True,
        seed=0,
    )
    assert trained is probe
    assert len(record.validation_curve) == 8
    best = max(record.validation_curve)
    assert record.best_epoch == record.validation_curve.index(best)
    assert record.validation_curve[-1] < best  # the last epoch was worse ...
    assert record.validation_accuracy == best  # ... and the best epoch's weights came back
    assert best >= 0.93
    assert record.num_parameters == 31 * 2
    with pytest.raises(SolverConfigurationError, match="restore_best_weights"):
        fit_head(x_train, y_train, head=probe, restore_best_weights=True)
    with pytest.raises(InvalidInputError, match="label 2 for a head of 2 classes"):
        fit_head(x_train, np.where(y_train == 1, 2, 0), head=probe)
