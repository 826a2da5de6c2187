"""`Progress`: plain lines, thinning, silence, throttled loss reads, tqdm bars and their fallback."""

from __future__ import annotations

import io
import re
import sys

import pytest

from backprop.progress import Progress, format_duration, format_values


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class LossReader:
    """A running-loss callable that records when it is called (each call would be a device sync)."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.times: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.times)

    def __call__(self) -> float:
        self.times.append(self.clock())
        return 0.4242


def run(progress: Progress, clock: FakeClock, epochs: range, steps: int, step_seconds: float = 0.1,
        loss: LossReader | None = None) -> None:
    with progress:
        for epoch in epochs:
            progress.start_epoch(epoch)
            for _ in range(steps):
                clock.now += step_seconds
                progress.step(loss)
            progress.end_epoch(epoch, {"loss": 1.0 / epoch, "val_loss": 2.0 / epoch, "grad_norm/0.W": 3.0})


def epochs_printed(text: str) -> list[int]:
    return [int(m) for m in re.findall(r"^epoch +(\d+)/", text, flags=re.M)]


def test_plain_line_format_values_rate_and_elapsed() -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(3, 10, verbose=2, stream=out, clock=clock), clock, range(1, 4), steps=10, step_seconds=0.2)
    lines = out.getvalue().splitlines()
    assert lines == [
        "epoch 1/3  loss 1  val_loss 2  5 steps/s  2.0s",
        "epoch 2/3  loss 0.5  val_loss 1  5 steps/s  4.0s",
        "epoch 3/3  loss 0.3333  val_loss 0.6667  5 steps/s  6.0s",
    ]


def test_steps_per_second_counts_this_epochs_steps_only() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(2, None, verbose=2, stream=out, clock=clock)
    progress.start_epoch(1)
    for _ in range(8):
        progress.step()
    clock.now += 2.0
    progress.end_epoch(1, {"loss": 0.25})
    clock.now += 10.0  # time between epochs is not part of the next epoch's rate
    progress.start_epoch(2)
    for _ in range(3):
        progress.step()
    clock.now += 0.5
    progress.end_epoch(2, {"loss": 0.125})
    progress.close()
    assert out.getvalue().splitlines() == [
        "epoch 1/2  loss 0.25  4 steps/s  2.0s",
        "epoch 2/2  loss 0.125  6 steps/s  12.5s",
    ]


def test_resumed_run_numbers_epochs_from_initial_epoch() -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(2, 1, verbose=2, initial_epoch=98, stream=out, clock=clock), clock, range(99, 101), steps=1)
    assert out.getvalue().startswith("epoch  99/100  loss 0.0101")
    assert epochs_printed(out.getvalue()) == [99, 100]


@pytest.mark.parametrize(("epochs", "expected"), [
    (5, [1, 2, 3, 4, 5]),
    (20, list(range(1, 21))),
    (100, [1, *range(5, 101, 5)]),
    (1000, [1, *range(50, 1001, 50)]),
    (39, [1, *range(2, 39, 2), 39]),
])
def test_verbose_1_prints_about_20_lines_with_first_and_last(epochs: int, expected: list[int]) -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(epochs, 1, verbose=1, stream=out, clock=clock), clock, range(1, epochs + 1), steps=1)
    assert epochs_printed(out.getvalue()) == expected


def test_verbose_2_prints_every_epoch() -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(100, 1, verbose=2, stream=out, clock=clock), clock, range(1, 101), steps=1)
    assert epochs_printed(out.getvalue()) == list(range(1, 101))


def test_a_run_that_stops_early_still_shows_its_last_epoch() -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(100, 1, verbose=1, stream=out, clock=clock), clock, range(1, 13), steps=1)
    assert epochs_printed(out.getvalue()) == [1, 5, 10, 12]


@pytest.mark.parametrize("stream", [io.StringIO, FakeTTY])
def test_verbose_0_writes_nothing_and_reads_no_loss(stream: type[io.StringIO]) -> None:
    clock, out, loss = FakeClock(), stream(), LossReader()
    progress = Progress(50, 10, verbose=0, stream=out, clock=clock)
    run(progress, clock, range(1, 51), steps=10, loss=loss)
    assert progress.mode == "silent"
    assert out.getvalue() == "" and loss.calls == 0


def test_default_stream_is_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    run(Progress(1, 1, verbose=1, clock=clock), clock, range(1, 2), steps=1)
    assert capsys.readouterr().out.startswith("epoch 1/1  loss 1  val_loss 2")


def test_plain_lines_never_read_the_running_loss() -> None:
    clock, out, loss = FakeClock(), io.StringIO(), LossReader()
    run(Progress(3, 50, verbose=2, stream=out, clock=clock), clock, range(1, 4), steps=50, loss=loss)
    assert loss.calls == 0 and len(out.getvalue().splitlines()) == 3


def test_bar_reads_the_running_loss_at_most_once_per_refresh_interval() -> None:
    pytest.importorskip("tqdm")
    clock, out = FakeClock(), FakeTTY()
    loss = LossReader(clock)
    progress = Progress(2, 100, verbose=2, stream=out, clock=clock, refresh_seconds=0.5)
    assert progress.mode == "bar"
    run(progress, clock, range(1, 3), steps=100, step_seconds=1 / 16, loss=loss)  # 6.25 s per epoch
    assert loss.calls == 2 * 12  # every 8th step: 0.5 s apart
    assert all(later - earlier >= 0.5 for earlier, later in zip(loss.times, loss.times[1:]))
    assert "loss 0.4242" in out.getvalue()  # the running loss is shown
    clock = FakeClock()
    loss = LossReader(clock)
    progress = Progress(1, 1024, verbose=1, stream=FakeTTY(), clock=clock, refresh_seconds=0.5)
    run(progress, clock, range(1, 2), steps=1024, step_seconds=1 / 1024, loss=loss)  # 1 s in all
    assert loss.calls == 2


def test_a_terminal_gets_one_tqdm_bar_per_epoch() -> None:
    pytest.importorskip("tqdm")
    clock, out = FakeClock(), FakeTTY()
    run(Progress(3, 4, verbose=2, stream=out, clock=clock), clock, range(1, 4), steps=4)
    text = out.getvalue()
    for epoch in (1, 2, 3):
        assert f"epoch {epoch}/3" in text
    assert "4/4" in text and "step/s" in text
    assert "loss 0.3333  val_loss 0.6667" in text  # the last bar ends with the epoch's values
    assert "grad_norm" not in text


def test_a_terminal_without_tqdm_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    clock, out = FakeClock(), FakeTTY()
    progress = Progress(2, 5, verbose=1, stream=out, clock=clock)
    assert progress.mode == "lines"
    run(progress, clock, range(1, 3), steps=5)
    assert out.getvalue().splitlines() == [
        "epoch 1/2  loss 1  val_loss 2  10 steps/s  0.5s",
        "epoch 2/2  loss 0.5  val_loss 1  10 steps/s  1.0s",
    ]


def test_use_tqdm_false_forces_lines_on_a_terminal() -> None:
    assert Progress(2, 5, stream=FakeTTY(), use_tqdm=False).mode == "lines"


def test_invalid_verbose_is_rejected() -> None:
    with pytest.raises(ValueError, match="verbose"):
        Progress(1, 1, verbose=-1)


def test_close_is_idempotent() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(10, 1, verbose=1, stream=out, clock=clock)
    progress.start_epoch(1)
    progress.end_epoch(1, {"loss": 1.0})
    progress.start_epoch(2)
    progress.end_epoch(2, {"loss": 0.5})
    progress.close()
    progress.close()
    assert epochs_printed(out.getvalue()) == [1, 2]


def test_formatting_helpers() -> None:
    assert format_values({"loss": 0.123456, "accuracy": 0.98765}) == "loss 0.1235  accuracy 0.9877"
    assert format_values({"loss": 12345.6}) == "loss 1.235e+04"
    assert [format_duration(s) for s in (0.04, 59.9, 125, 3725)] == ["0.0s", "59.9s", "2m05s", "1h02m05s"]
