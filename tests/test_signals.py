"""SIGTERM and Ctrl-C inside a command: never swallowed by an `except Exception`, held back where a section
must not be cut (registering; native libraries calling back into Python)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from trainpipe._signals import SignalInterrupt, deferred, raise_interrupt


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)  # the handler runs at the next bytecode boundary


@pytest.fixture
def cli_handler():  # type: ignore[no-untyped-def]
    old = signal.signal(signal.SIGTERM, raise_interrupt)
    yield
    signal.signal(signal.SIGTERM, old)


def test_sigterm_passes_through_except_exception(cli_handler: None) -> None:
    def registry_call() -> None:
        try:
            _sigterm_self()
        except Exception:  # what MLflow and the gate's error handling do
            raise AssertionError("swallowed") from None

    with pytest.raises(SignalInterrupt) as caught:
        registry_call()
    assert caught.value.signum == signal.SIGTERM
    assert isinstance(caught.value, KeyboardInterrupt)


def test_deferred_holds_the_signal_until_the_section_ends(cli_handler: None) -> None:
    steps: list[str] = []
    with pytest.raises(SignalInterrupt) as caught, deferred():
        _sigterm_self()
        steps.append("registered")
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C too; SIGTERM, the stronger one, is reported
        time.sleep(0.05)
        steps.append("sealed")
    assert steps == ["registered", "sealed"] and caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is raise_interrupt  # the handler is back


def test_deferred_raises_at_a_safe_point_and_wins_over_the_error_it_caused(cli_handler: None) -> None:
    rounds = []
    with pytest.raises(SignalInterrupt), deferred() as held:
        for i in range(5):
            if i == 2:
                _sigterm_self()
            held.raise_pending()  # between two boosting rounds
            rounds.append(i)
    assert rounds == [0, 1]
    with pytest.raises(SignalInterrupt) as caught, deferred():
        _sigterm_self()
        raise RuntimeError("a store call broken by the signal")
    assert isinstance(caught.value.__cause__, RuntimeError)
    with deferred() as held:  # nothing held: nothing raised
        held.raise_pending()


def test_a_second_ctrl_c_reports_the_first_interrupt_with_its_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    from trainpipe import TrainingInterrupted
    from trainpipe.cli import _guard

    def train() -> None:
        try:
            raise TrainingInterrupted(signal.SIGINT, "interrupted by signal SIGINT; checkpoint written to /ck/last.pt")
        except TrainingInterrupted:
            raise KeyboardInterrupt from None  # the second Ctrl-C, while the runner records the first

    with pytest.raises(typer.Exit) as caught:
        _guard(False, train)
    assert caught.value.exit_code == 130
    assert "checkpoint written to /ck/last.pt" in capsys.readouterr().err
