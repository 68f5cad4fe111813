"""Ending a block run in a request thread (scheduler/interrupts.py): at its time limit or when its client
has gone, even when the code inside catches Exception; and nothing raised into the thread afterwards."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from scheduler.interrupts import WATCH_INTERVAL, ClientGone, Interruptible, TimeLimitExceeded


def in_a_thread(block) -> BaseException | None:  # type: ignore[no-untyped-def]
    """What ``block`` raised when run in a thread other than the main one, or None."""
    raised: list[BaseException | None] = [None]

    def target() -> None:
        try:
            block()
        except BaseException as exc:  # the test wants whatever ended it
            raised[0] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return raised[0]


def stubborn() -> None:
    """A handler that swallows every Exception, as some do."""
    for _ in range(400):
        with contextlib.suppress(Exception):  # that is the point
            time.sleep(0.025)


def test_time_limit_in_a_thread_ends_even_a_stubborn_block():
    def block() -> None:
        with Interruptible(0.3):
            stubborn()

    started = time.monotonic()
    assert isinstance(in_a_thread(block), TimeLimitExceeded)
    assert time.monotonic() - started < 5  # not the block's 10 s


def test_a_client_gone_ends_the_block():
    gone = threading.Event()
    threading.Timer(0.2, gone.set).start()

    def block() -> None:
        with Interruptible(None, gone.is_set):
            stubborn()

    assert isinstance(in_a_thread(block), ClientGone)


def test_a_block_that_ends_in_time_meets_nothing_later():
    """The watcher is stopped on the way out: the thread runs on past the limit untouched."""

    def block() -> None:
        for _ in range(20):
            with Interruptible(WATCH_INTERVAL, lambda: False):
                time.sleep(WATCH_INTERVAL * 0.9)
        time.sleep(3 * WATCH_INTERVAL)

    raised = in_a_thread(block)
    assert raised is None or isinstance(raised, TimeLimitExceeded)  # at most one at the boundary, inside a block


@pytest.mark.parametrize("seconds", [None, 0.2])
def test_nothing_to_watch_or_a_quick_block_runs_plainly(seconds):
    with Interruptible(seconds):
        total = sum(range(10))
    assert total == 45
