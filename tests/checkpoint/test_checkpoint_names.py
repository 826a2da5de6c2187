"""A checkpoint is a ``.npz`` file and its name says so: any other name is refused before
anything is written (NumPy's ``np.savez`` would append ``.npz`` silently instead)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import backprop as bp
from backprop.cli import main


def small_model() -> bp.Sequential:
    return bp.Sequential([bp.layers.Dense(3, 2)], seed=0)


@pytest.mark.parametrize("name", ["model.pt", "model.pth", "run.ckpt", "model", "model.npz.tmp", "archive.zip"])
def test_save_refuses_a_name_that_is_not_npz_and_names_the_fix(tmp_path: Path, name: str) -> None:
    model = small_model()
    target = tmp_path / name
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for save in (lambda: model.save(target), lambda: bp.save_checkpoint(str(target), model)):
        with pytest.raises(ValueError, match=rf"a checkpoint is a \.npz file.*name it '.*{stem}\.npz'"):
            save()
    assert os.listdir(tmp_path) == []  # nothing written, under any name


@pytest.mark.parametrize("name", ["model.npz", "MODEL.NPZ", "v1.2.npz"])
def test_npz_names_are_saved_as_given(tmp_path: Path, name: str) -> None:
    model = small_model()
    model.save(tmp_path / name)
    assert os.listdir(tmp_path) == [name]
    np.testing.assert_array_equal(bp.load(tmp_path / name).state_dict()["0.W"], model.state_dict()["0.W"])


def test_fit_refuses_a_checkpoint_name_before_training(tmp_path: Path) -> None:
    model = small_model()
    X, y = np.ones((4, 3), dtype=np.float32), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"\.npz"):
        model.fit(X, y, loss="cross_entropy", optimizer=bp.optim.SGD(model.parameters(), lr=0.1), epochs=2,
                  checkpoint=tmp_path / "run.pt", verbose=0)
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"\.npz"):
        bp.callbacks.ModelCheckpoint("run.ckpt")


def test_cli_checkpoint_option_refuses_other_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--data", "xor", "--epochs", "1", "--checkpoint", str(tmp_path / "run.pt"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--checkpoint" in err and "run.npz" in err, err
    assert os.listdir(tmp_path) == []
