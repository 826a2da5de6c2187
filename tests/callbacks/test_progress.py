"""`Progress`: plain lines, thinning, silence, throttled loss reads, tqdm bars and their fallback."""

from __future__ import annotations

import io
import re
import sys

import pytest

from backprop.progress import Progress, format_duration, format_values
from backprop.progress_format import format_number, format_rate, layout


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
        "             loss  val_loss  steps/s      time",
        "epoch 1/3  1.0000    2.0000      5.0      2.0s",
        "epoch 2/3  0.5000    1.0000      5.0      4.0s",
        "epoch 3/3  0.3333    0.6667      5.0      6.0s",
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
        "             loss  steps/s      time",
        "epoch 1/2  0.2500      4.0      2.0s",
        "epoch 2/2  0.1250      6.0     12.5s",
    ]


def test_resumed_run_numbers_epochs_from_initial_epoch() -> None:
    clock, out = FakeClock(), io.StringIO()
    run(Progress(2, 1, verbose=2, initial_epoch=98, stream=out, clock=clock), clock, range(99, 101), steps=1)
    assert out.getvalue().splitlines()[1].startswith("epoch  99/100  0.0101")
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
    assert capsys.readouterr().out.splitlines()[1].startswith("epoch 1/1  1.0000    2.0000")


def test_plain_lines_never_read_the_running_loss() -> None:
    clock, out, loss = FakeClock(), io.StringIO(), LossReader()
    run(Progress(3, 50, verbose=2, stream=out, clock=clock), clock, range(1, 4), steps=50, loss=loss)
    assert loss.calls == 0 and len(out.getvalue().splitlines()) == 1 + 3  # the column names, 3 epochs


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
    assert re.search(r"\| +0/4, loss +-, +- steps/s", text)  # the bar, before its first refresh
    assert "epoch 3/3  0.3333    0.6667 " in lines_of(text)[-1]  # each bar ends as the epoch's line
    assert "grad_norm" not in text


def test_a_terminal_without_tqdm_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)  # `import tqdm` now raises ImportError
    clock, out = FakeClock(), FakeTTY()
    progress = Progress(2, 5, verbose=1, stream=out, clock=clock)
    assert progress.mode == "lines"
    run(progress, clock, range(1, 3), steps=5)
    assert out.getvalue().splitlines() == [
        "             loss  val_loss  steps/s      time",
        "epoch 1/2  1.0000    2.0000       10      0.5s",
        "epoch 2/2  0.5000    1.0000       10      1.0s",
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
    assert format_values({"loss": 12345.6}) == "loss 12346"
    assert [format_duration(s) for s in (0.04, 59.9, 125, 3725)] == ["0.0s", "59.9s", "2m05s", "1h02m05s"]


DIGITS_KEYS = ("loss", "accuracy", "lr", "val_loss", "val_accuracy")


def lines_of(text: str) -> list[str]:
    """What a terminal shows: every line, and every state of a bar redrawn with ``\\r``."""
    return [part for line in text.split("\n") for part in line.split("\r") if part.strip()]


@pytest.mark.parametrize("epochs", [3, 60, 1000])
@pytest.mark.parametrize("width", [80, 60, 44])
def test_lines_fit_the_width_and_always_show_the_validation_values(epochs: int, width: int) -> None:
    clock, out = FakeClock(), io.StringIO()
    values = {"loss": 1.8969, "accuracy": 0.4393, "lr": 0.002, "val_loss": 0.72, "val_accuracy": 0.7708,
              "grad_norm/0.W": 3.0}
    with Progress(epochs, 41, verbose=2, stream=out, clock=clock, width=width) as progress:
        for epoch in (1, 2):
            progress.start_epoch(epoch)
            clock.now += 0.004
            for _ in range(41):
                progress.step()
            progress.end_epoch(epoch, values)
    header, first, *_ = lines = out.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), lines
    assert re.search(r"\bval_loss\b", header) and re.search(r"\bval_acc(uracy)?\b", header)
    assert "0.7200" in first and "0.7708" in first
    if width == 80 and epochs < 100:  # all of it fits: nothing abbreviated or dropped
        assert header.split() == ["loss", "accuracy", "val_loss", "val_accuracy", "lr", "steps/s", "time"]
        assert "10.2k" in first  # 41 steps in 4 ms


def test_the_columns_do_not_move_whatever_the_values() -> None:
    clock, out = FakeClock(), io.StringIO()
    swings = [0.5, 1.23456789e-5, 12345.678, 7.0, 0.0, 987654321.0, float("nan"), 3e-9]
    with Progress(len(swings), 3, verbose=2, stream=out, clock=clock, width=80) as progress:
        for epoch, value in enumerate(swings, start=1):
            progress.start_epoch(epoch)
            for _ in range(3):
                clock.now += 10.0 ** (epoch - 4)  # from 3000 steps/s down to 3e-4
                progress.step()
            progress.end_epoch(epoch, {"loss": value, "val_loss": value / 3})
    lines = out.getvalue().splitlines()
    assert len({len(line) for line in lines}) == 1, lines
    fields = [[m.end() for m in re.finditer(r"\S+", line)] for line in lines[1:]]
    assert all(ends == fields[0] for ends in fields), lines  # every field ends in the same column


def test_numbers_and_rates_have_fixed_widths_and_read_humanly() -> None:
    for value in (0.5, 1.23456789e-5, -0.25, 12345.678, 99999.96, 9.99996, 0.0, 1e300, -3e-9, 0.0010):
        assert len(format_number(value)) == 6, value
    assert [format_number(v) for v in (0.82061, 1.8969, 12.3456, 0.002, 5e-4, 0)] == [
        "0.8206", "1.8969", "12.346", "0.0020", "5.0e-4", "0.0000"]
    assert [format_rate(r) for r in (2.5, 812.4, 999.96, 10064.0, 1.5e6)] == ["2.5", "812", "1.0k", "10.1k", "1.5M"]
    assert all(len(format_rate(r)) <= 6 for r in (0.01, 9.99, 999.4, 999999.0, 5.5e8, 3e11))


def test_layout_drops_the_least_useful_columns_first() -> None:
    keys = ["loss", "accuracy", "f1", "lr", "val_loss", "val_accuracy", "val_f1"]
    wide = layout(keys, 11, 200)
    assert wide.keys == ("loss", "accuracy", "f1", "val_loss", "val_accuracy", "val_f1", "lr") and wide.rate
    narrow = layout(keys, 11, 60)
    assert narrow.width <= 60 and "lr" not in narrow.keys and not narrow.rate
    assert {"loss", "val_loss", "val_accuracy", "val_f1"} <= set(narrow.keys)
    assert "val_acc" in narrow.headers


def test_the_width_defaults_to_the_columns_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "57")
    assert Progress(1, 1, stream=io.StringIO()).width == 57
    with pytest.raises(ValueError, match="width"):
        Progress(1, 1, width=5)


def test_a_bar_fits_the_width_and_its_fields_stay_put() -> None:
    pytest.importorskip("tqdm")
    clock, out = FakeClock(), FakeTTY()
    loss = LossReader(clock)
    progress = Progress(2, 2000, verbose=2, stream=out, clock=clock, width=80, refresh_seconds=0.5)
    run(progress, clock, range(1, 3), steps=2000, step_seconds=1e-3, loss=loss)
    bars = [line for line in lines_of(out.getvalue()) if "%|" in line]
    assert len(bars) > 4 and all(len(line) <= 80 for line in lines_of(out.getvalue()))
    assert {len(line) for line in bars} == {80}  # the bar fills the width: nothing moves while it runs
    assert any(line.endswith("/2000, loss 0.4242,   1.0k steps/s") for line in bars), bars
