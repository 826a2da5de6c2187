"""fit's training features: metrics, early stopping, gradient norms, schedules, penalties,
checkpoints during training (periodic, Ctrl-C, divergence) and resumed numbering."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import backprop as bp
from backprop.optim import lr_scheduler
from helpers import host, torch_params, torch_twin


def blobs(rng: np.random.Generator, n: int = 60, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, classes, n)
    X = rng.standard_normal((n, 4)) + 3.0 * np.eye(classes, 4)[y]
    return X.astype(np.float32), y


def classifier(device="cpu", dtype="float32", seed=0, **dense) -> bp.Sequential:
    return bp.Sequential(
        bp.Dense(4, 16, init="he", **dense), bp.ReLU(), bp.Dense(16, 3), device=device, dtype=dtype, seed=seed
    )


def test_accuracy_metrics_for_every_kind_of_output(device: bp.Device, rng: np.random.Generator) -> None:
    """With lr=0 the weights never change, so the epoch's running accuracy is the accuracy of
    the model's own predictions, which we compute independently."""
    X, y = blobs(rng)
    binary = (y == 0).astype(np.float32).reshape(-1, 1)
    cases = [
        (classifier(device), "cross_entropy", y, lambda P: P.argmax(axis=1) == y),
        (
            bp.Sequential(bp.Dense(4, 1), bp.Sigmoid(), device=device, seed=1),
            "bce",
            binary,
            lambda P: (P > 0.5) == (binary > 0.5),
        ),
        (
            bp.Sequential(bp.Dense(4, 1), device=device, seed=1),
            "bce_with_logits",
            binary,
            lambda P: (P > 0) == (binary > 0.5),
        ),
    ]
    for model, loss, target, correct in cases:
        history = model.fit(
            X,
            target,
            loss=loss,
            optimizer=bp.optim.SGD(model.parameters(), lr=0.0),
            epochs=1,
            batch_size=16,
            metrics=["accuracy"],
            validation_data=(X, target),
            verbose=0,
        )
        expected = float(np.mean(correct(host(model.predict(X)))))
        assert 0.0 < expected < 1.0
        assert history["accuracy"][0] == pytest.approx(expected)
        assert history["val_accuracy"][0] == pytest.approx(expected)
        assert model.evaluate(X, target, loss, metrics=["accuracy"])["accuracy"] == pytest.approx(expected)


def test_accuracy_needs_a_classification_loss(rng: np.random.Generator) -> None:
    model = bp.Sequential(bp.Dense(4, 1))
    X, _ = blobs(rng)
    with pytest.raises(ValueError, match="accuracy needs a classification loss"):
        model.fit(X, X[:, :1], loss="mse", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), metrics=["accuracy"])
    with pytest.raises(ValueError, match="f1 needs a classification loss"):  # f1 exists since issue #16
        model.fit(X, X[:, :1], loss="mse", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), metrics=["f1"])
    with pytest.raises(ValueError, match="unknown metric 'f2'"):
        model.fit(X, X[:, :1], loss="mse", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), metrics=["f2"])


def test_training_improves_and_validation_accuracy_is_high(device: bp.Device, rng: np.random.Generator) -> None:
    X, y = blobs(rng, 200)
    model = classifier(device)
    history = model.fit(
        X[:150],
        y[:150],
        loss="cross_entropy",
        optimizer=bp.optim.Adam(model.parameters(), lr=0.01),
        epochs=30,
        batch_size=32,
        metrics=["accuracy"],
        validation_data=(X[150:], y[150:]),
        verbose=0,
    )
    assert history["accuracy"][-1] > history["accuracy"][0]
    assert history["val_accuracy"][-1] > 0.8
    assert history["lr"] == [0.01] * 30


def test_early_stopping_stops_and_restores_the_best_weights(rng: np.random.Generator) -> None:
    """Train on noise with a separate validation set: validation loss soon rises. The restored
    weights must be exactly those a plain run of best_epoch epochs ends with."""
    X, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    Xv, yv = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)

    def run(epochs, stopper=None):
        model = classifier(seed=3)
        opt = bp.optim.Adam(model.parameters(), lr=0.05)
        history = model.fit(
            X,
            y,
            loss="cross_entropy",
            optimizer=opt,
            epochs=epochs,
            batch_size=8,
            validation_data=(Xv, yv),
            early_stopping=stopper,
            verbose=0,
        )
        return model, history

    stopper = bp.EarlyStopping(monitor="val_loss", patience=3)
    model, history = run(200, stopper)
    assert stopper.stopped_epoch is not None and stopper.stopped_epoch == stopper.best_epoch + 4
    assert len(history) == stopper.stopped_epoch < 200
    assert stopper.best_value == min(history["val_loss"])
    reference, _ = run(stopper.best_epoch)
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(model.state_dict()[name], value)


def test_early_stopping_checkpoint_holds_the_restored_weights(tmp_path, rng: np.random.Generator) -> None:
    X, y = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    Xv, yv = rng.standard_normal((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
    model = classifier(seed=3)
    stopper = bp.EarlyStopping(patience=2)
    model.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=bp.optim.Adam(model.parameters(), lr=0.05),
        epochs=100,
        batch_size=8,
        validation_data=(Xv, yv),
        early_stopping=stopper,
        checkpoint=tmp_path / "c.npz",
        verbose=0,
    )
    assert stopper.stopped_epoch is not None and stopper.best_epoch < stopper.stopped_epoch
    saved = bp.load_checkpoint(tmp_path / "c.npz")
    assert saved.epoch == stopper.stopped_epoch
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(saved.model.state_dict()[name], value)


def test_early_stopping_arguments(rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    model = classifier()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="monitors 'val_loss'.*pass validation_data"):
        model.fit(X, y, loss="cross_entropy", optimizer=opt, early_stopping=bp.EarlyStopping(), verbose=0)
    with pytest.raises(ValueError, match="patience must be"):
        bp.EarlyStopping(patience=-1)
    stopper = bp.EarlyStopping(monitor="accuracy", patience=0)
    assert stopper.maximize
    model.fit(
        X, y, loss="cross_entropy", optimizer=opt, epochs=3, metrics=["accuracy"], early_stopping=stopper, verbose=0
    )


def test_gradient_norms_are_recorded_per_parameter(device: bp.Device, rng: np.random.Generator) -> None:
    """One full-batch step per epoch: epoch 1's norm is the norm of backprop's first gradient."""
    X, y = blobs(rng)
    model, twin = classifier(device, "float64"), classifier(device, "float64")
    history = model.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=bp.optim.SGD(model.parameters(), lr=0.1),
        epochs=2,
        batch_size=len(X),
        shuffle=False,
        record_grad_norms=True,
        clip_grad_norm=1e-3,
        verbose=0,
    )
    twin.backprop(X, y, "cross_entropy")
    for p in twin.parameters():
        assert history[f"grad_norm/{p.name}"][0] == pytest.approx(np.linalg.norm(host(p.grad)), rel=1e-10)
        assert len(history[f"grad_norm/{p.name}"]) == 2


def test_schedules_step_once_per_epoch_and_plateau_sees_the_validation_loss(rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    model = classifier()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    history = model.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=opt,
        epochs=5,
        scheduler=lr_scheduler.StepLR(opt, step_size=2, gamma=0.5),
        verbose=0,
    )
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    model = classifier()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    Xv, yv = rng.standard_normal((30, 4)).astype(np.float32), rng.integers(0, 3, 30)  # noise: val loss rises
    history = model.fit(
        X, y, loss="cross_entropy", optimizer=opt, epochs=8, validation_data=(Xv, yv), scheduler=plateau, verbose=0
    )
    expected, best = [0.1], np.inf
    for v in history["val_loss"][:-1]:  # the lr recorded for epoch k+1 follows val_loss of epoch k
        if v < best * (1 - 1e-4):
            best = v
            expected.append(expected[-1])
        else:
            expected.append(expected[-1] * 0.5)
    assert history["lr"] == pytest.approx(expected)
    assert min(history["lr"]) < 0.1


def test_l1_l2_penalties_are_in_the_loss_and_the_gradient(device: bp.Device, rng: np.random.Generator) -> None:
    X, y = blobs(rng, 12)
    model = classifier(device, "float64", l1=0.01, l2=0.02)
    plain = classifier(device, "float64")
    W = host(model.layers[0].W.data)
    penalty = 0.01 * np.abs(W).sum() + 0.02 * (W**2).sum()
    assert model.backprop(X, y, "cross_entropy") == pytest.approx(
        plain.backprop(X, y, "cross_entropy") + penalty, rel=1e-12
    )
    np.testing.assert_allclose(
        host(model.layers[0].W.grad), host(plain.layers[0].W.grad) + 0.01 * np.sign(W) + 0.04 * W, rtol=1e-12
    )
    np.testing.assert_array_equal(
        host(model.layers[0].b.grad), host(plain.layers[0].b.grad)
    )  # biases are not penalised
    assert bp.gradcheck(model, X, y, "cross_entropy").ok


def test_l1_l2_penalised_backprop_matches_torch_autograd(device: bp.Device, rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    X, y = blobs(rng, 10)
    model = classifier(device, "float64", l1=0.03, l2=0.02)
    twin = torch_twin(model)
    loss = model.backprop(X.astype(np.float64), y, "cross_entropy")
    W = twin[0].weight
    reference = torch.nn.functional.cross_entropy(twin(torch.tensor(X, dtype=torch.float64)), torch.tensor(y))
    reference = reference + 0.03 * W.abs().sum() + 0.02 * (W**2).sum()
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    for p, expected in zip(
        model.parameters(), [m.grad.numpy().T if m.ndim == 2 else m.grad.numpy() for m in twin.parameters()]
    ):
        np.testing.assert_allclose(host(p.grad), expected, rtol=1e-11, atol=1e-14, err_msg=p.name)


def test_l2_penalty_matches_torch_weight_decay_on_the_weights(device: bp.Device, rng: np.random.Generator) -> None:
    """l2 * sum W^2 has gradient 2 l2 W: torch's SGD weight_decay = 2 l2 on the weight only."""
    torch = pytest.importorskip("torch")
    model = bp.Sequential(bp.Dense(4, 5, l2=0.05), bp.Tanh(), bp.Dense(5, 3), device=device, dtype="float64", seed=2)
    twin = torch_twin(model)
    opt = bp.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(
        [{"params": [twin[0].weight], "weight_decay": 0.1}, {"params": [twin[0].bias, *twin[2].parameters()]}],
        lr=0.1,
        momentum=0.9,
    )
    for _ in range(20):
        X, y = blobs(rng, 8)
        model.backprop(X.astype(np.float64), y, "cross_entropy")
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(twin(torch.tensor(X, dtype=torch.float64)), torch.tensor(y)).backward()
        topt.step()
    for p, expected in zip(model.parameters(), torch_params(twin)):
        np.testing.assert_allclose(host(p.data), expected, rtol=1e-10, atol=1e-13)


def test_resumed_numbering_continues_the_history(rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    model = classifier()
    opt = bp.optim.SGD(model.parameters(), lr=0.1)
    history = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=2, verbose=0)
    same = model.fit(X, y, loss="cross_entropy", optimizer=opt, epochs=3, initial_epoch=2, history=history, verbose=0)
    assert same is history and history.epochs == [1, 2, 3, 4, 5] and len(history["loss"]) == 5


def run_with_checkpoints(tmp_path, rng_seed: int, epochs: int, **fit_options):
    rng = np.random.default_rng(rng_seed)
    X, y = blobs(rng)
    model = classifier(dtype="float64", seed=9)
    opt = bp.optim.Adam(model.parameters(), lr=0.01)
    history = model.fit(
        X, y, loss="cross_entropy", optimizer=opt, epochs=epochs, batch_size=16, verbose=0, **fit_options
    )
    return model, opt, history, (X, y)


def test_periodic_checkpoints_and_the_final_one(tmp_path) -> None:
    path = tmp_path / "run.npz"
    model, _, _, _ = run_with_checkpoints(
        tmp_path, 0, 5, checkpoint=path, checkpoint_every=2, checkpoint_extra={"note": "hi"}
    )
    ckpt = bp.load_checkpoint(path)
    assert ckpt.epoch == 5 and ckpt.extra == {"note": "hi"} and ckpt.history.epochs == [1, 2, 3, 4, 5]
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[name], value)


def test_ctrl_c_saves_the_last_completed_epoch_and_resuming_is_exact(tmp_path, monkeypatch) -> None:
    reference, _, ref_history, (X, y) = run_with_checkpoints(tmp_path, 1, 6)
    path = tmp_path / "interrupted.npz"
    calls = {"n": 0}
    real_step = bp.optim.Adam.step

    def interrupt_in_epoch_4(self):
        calls["n"] += 1
        if calls["n"] == 3 * 4 + 2:  # 4 batches per epoch: the 2nd step of epoch 4
            raise KeyboardInterrupt
        real_step(self)

    monkeypatch.setattr(bp.optim.Adam, "step", interrupt_in_epoch_4)
    with pytest.raises(KeyboardInterrupt):
        run_with_checkpoints(tmp_path, 1, 6, checkpoint=path, checkpoint_every=5)
    monkeypatch.setattr(bp.optim.Adam, "step", real_step)
    ckpt = bp.load_checkpoint(path)
    assert ckpt.epoch == 3 and ckpt.history.epochs == [1, 2, 3]
    history = ckpt.model.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=ckpt.optimizer,
        epochs=3,
        batch_size=16,
        initial_epoch=ckpt.epoch,
        history=ckpt.history,
        verbose=0,
    )
    assert history["loss"] == ref_history["loss"]
    for name, value in reference.state_dict().items():
        np.testing.assert_array_equal(ckpt.model.state_dict()[name], value)


def diverging_fit(rng: np.random.Generator, **options: Any) -> str:
    """The message of a `fit` whose learning rate explodes after a few epochs (``options``: how
    it checkpoints)."""
    X, y = blobs(rng)
    model = bp.Sequential(bp.Dense(4, 3), device="cpu", seed=0)
    opt = bp.optim.SGD(model.parameters(), lr=1.0)
    scheduler = lr_scheduler.ExponentialLR(opt, gamma=1e6)
    with pytest.raises(bp.TrainingDivergedError) as err:
        model.fit(100 * X, y, loss="cross_entropy", optimizer=opt, epochs=50, scheduler=scheduler, verbose=0, **options)
    return str(err.value)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_keeps_the_last_good_checkpoint(tmp_path, rng: np.random.Generator) -> None:
    path = tmp_path / "diverge.npz"
    message = diverging_fit(rng, checkpoint=path, checkpoint_every=100)
    assert re.search(rf"in epoch (\d+).*last good state is in '{path}'", message)
    bad_epoch = int(message.split("in epoch ")[1].split(".")[0])
    ckpt = bp.load_checkpoint(path)
    assert ckpt.epoch == bad_epoch - 1 > 0
    assert all(np.isfinite(v).all() for v in ckpt.model.state_dict().values())
    assert all(np.isfinite(ckpt.history["loss"]))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_with_a_best_only_checkpoint_names_its_best_epoch(tmp_path, rng: np.random.Generator) -> None:
    """A best-only file holds the best epoch, not the last good one: the message says which."""
    path = tmp_path / "best.npz"
    best = bp.callbacks.ModelCheckpoint(path, monitor="loss", save_best_only=True)
    message = diverging_fit(rng, callbacks=[best])
    assert "last good state" not in message
    assert f"The best state so far (epoch {best.best_epoch}, loss {best.best_value:.4g}) is in '{path}'" in message
    assert bp.load_checkpoint(path).epoch == best.best_epoch


def test_verbose_lines(capsys: pytest.CaptureFixture[str], rng: np.random.Generator) -> None:
    X, y = blobs(rng)
    model = classifier()
    model.fit(
        X,
        y,
        loss="cross_entropy",
        optimizer=bp.optim.SGD(model.parameters(), lr=0.1),
        epochs=3,
        metrics=["accuracy"],
        verbose=2,
    )
    header, *lines = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:2] == ["loss", "accuracy"]  # the table's column names, then one line per epoch
    assert len(lines) == 3 and all(re.fullmatch(r"epoch \d/3 +\d\.\d{4} +\d\.\d{4} .*", line) for line in lines)
    model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), epochs=3, verbose=0)
    assert capsys.readouterr().out == ""


def test_silent_fit_reads_results_in_blocks_and_records_the_same_history(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], device: bp.Device, rng: np.random.Generator
) -> None:
    """verbose=0 with nothing that needs an epoch's values when it ends reads them in blocks
    (one host transfer per block); the history is exactly the one read epoch by epoch."""
    from backprop import epoch_results  # noqa: PLC0415 - spied on in this test only
    from backprop.backends import Backend  # noqa: PLC0415

    monkeypatch.setattr(epoch_results, "READ_EVERY", 7)  # 4 batches an epoch: a block every 2 epochs
    reads = []
    original = Backend.to_floats
    monkeypatch.setattr(Backend, "to_floats", lambda self, values: reads.append(len(values)) or original(self, values))
    X, y = blobs(rng)
    runs = []
    for verbose in (0, 2):
        reads.clear()
        model = classifier(device)
        history = model.fit(
            X,
            y,
            loss="cross_entropy",
            optimizer=bp.optim.Adam(model.parameters(), lr=0.01),
            epochs=9,
            batch_size=16,
            metrics=["accuracy"],
            record_grad_norms=True,
            verbose=verbose,
        )
        runs.append((history, model.state_dict(), list(reads)))
    capsys.readouterr()
    (silent, weights, silent_reads), (loud, loud_weights, loud_reads) = runs
    assert len(silent_reads) == 5 and len(loud_reads) == 9  # blocks of 2, 2, 2, 2, 1 epochs against one per epoch
    assert silent.to_dict() == loud.to_dict()
    assert list(silent.history) == ["loss", "accuracy", *(f"grad_norm/{p}" for p in weights), "lr"]
    for name, value in weights.items():
        np.testing.assert_array_equal(value, loud_weights[name])


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_silent_fit_names_the_epoch_that_diverged(rng: np.random.Generator) -> None:
    """Read in blocks, a diverging loss still names its epoch; the history keeps the epochs before it."""
    X = rng.standard_normal((60, 4)).astype(np.float32)
    target = X.sum(axis=1, keepdims=True)
    found = []
    for verbose in (0, 2):
        model = bp.Sequential(bp.Dense(4, 1), device="cpu", seed=0)
        history = bp.History()
        with pytest.raises(bp.TrainingDivergedError, match=r"in epoch (\d+)\.") as err:
            model.fit(
                X,
                target,
                loss="mse",
                optimizer=bp.optim.SGD(model.parameters(), lr=3.0),
                epochs=200,
                batch_size=16,
                history=history,
                verbose=verbose,
            )
        found.append((str(err.value), history.to_dict()))
    assert found[0] == found[1]
    message, history = found[0]
    assert int(message.split("in epoch ")[1].split(".")[0]) == len(history["epochs"]) + 1 > 1


def test_ctrl_c_in_a_silent_fit_keeps_the_completed_epochs_in_the_history(
    monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator
) -> None:
    """Results read in blocks are not lost to Ctrl-C: the epochs completed before it are recorded,
    with the values an uninterrupted run records for them."""
    X, y = blobs(rng)
    histories = []
    real_step = bp.optim.SGD.step
    for interrupt_at in (None, 4 * 6 + 2):  # 4 batches an epoch: the 2nd step of epoch 7
        calls = {"n": 0}

        def step(self: bp.optim.SGD, calls: dict = calls, interrupt_at: int | None = interrupt_at) -> None:
            calls["n"] += 1
            if calls["n"] == interrupt_at:
                raise KeyboardInterrupt
            real_step(self)

        monkeypatch.setattr(bp.optim.SGD, "step", step)
        model, history = classifier(), bp.History()
        options = {
            "loss": "cross_entropy",
            "optimizer": bp.optim.SGD(model.parameters(), lr=0.1),
            "batch_size": 16,
            "epochs": 6 if interrupt_at is None else 20,
            "history": history,
            "verbose": 0,
        }
        if interrupt_at is None:
            model.fit(X, y, **options)
        else:
            with pytest.raises(KeyboardInterrupt):
                model.fit(X, y, **options)
        histories.append(history.to_dict())
    assert histories[1]["epochs"] == [1, 2, 3, 4, 5, 6]
    assert histories[1] == histories[0]


def test_a_loss_that_explodes_but_stays_finite_warns_once_and_is_recorded(rng: np.random.Generator) -> None:
    X = rng.standard_normal((64, 3))
    y = X @ rng.standard_normal((3, 1))
    model = bp.Sequential(bp.Dense(3, 1), device="cpu", dtype="float64", seed=0)
    opt = bp.optim.SGD(model.parameters(), lr=0.9)  # each step overshoots by more than it corrects
    with pytest.warns(
        bp.callbacks.LossGrowthWarning, match=r"grew from .* \(epoch 1\) to .* though it is still finite"
    ) as caught:
        history = model.fit(100 * X, y, loss="mse", optimizer=opt, epochs=12, batch_size=64, verbose=0)
    assert len(caught) == 1 and all(np.isfinite(history["loss"]))
    assert max(history["loss"]) > 1e4 * history["loss"][0]
    assert len(history.warnings) == 1 and "diverging" in history.warnings[0]["message"]
    assert bp.History.from_dict(history.to_dict()).warnings == history.warnings


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_divergence_in_the_first_epoch_names_no_checkpoint(tmp_path, rng: np.random.Generator) -> None:
    """Nothing was written by this run, and the file at the path is an older run's: the
    message must not send the user there, and the older file stays as it was."""
    path = tmp_path / "older.npz"
    path.write_bytes(b"an older run's file")
    X, y = blobs(rng)
    model = bp.Sequential(bp.Dense(4, 3), device="cpu", seed=0)
    opt = bp.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(bp.TrainingDivergedError) as err:
        model.fit(1e30 * X, y, loss="cross_entropy", optimizer=opt, epochs=3, checkpoint=path, verbose=0)
    assert "in epoch 1" in str(err.value) and "last good state" not in str(err.value)
    assert path.read_bytes() == b"an older run's file"


def test_a_checkpoint_keeps_the_historys_warnings(tmp_path, rng: np.random.Generator) -> None:
    history = bp.History()
    history.append(1, {"loss": 1.0})
    history.warn(1, "the loss grew")
    model = bp.Sequential(bp.Dense(3, 1), seed=0)
    model.save(tmp_path / "w.npz", history=history, epoch=1)
    assert bp.load_checkpoint(tmp_path / "w.npz").history.warnings == [{"epoch": 1, "message": "the loss grew"}]
