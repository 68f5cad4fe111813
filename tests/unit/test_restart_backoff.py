"""``hpc-wps serve`` restarts a dead dispatcher later each time it dies young, and at once after a long run."""

from app.cli import RestartBackoff


def test_a_dispatcher_dying_at_once_waits_twice_as_long_each_time_up_to_the_longest():
    backoff = RestartBackoff(first=1.0, longest=10.0, settled=120.0)
    assert [backoff.delay(0.2) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_dispatcher_that_ran_a_while_is_restarted_after_the_first_delay_again():
    backoff = RestartBackoff(first=1.0, longest=60.0, settled=120.0)
    for _ in range(4):
        backoff.delay(1.0)
    assert backoff.delay(300.0) == 1.0
    assert backoff.delay(0.5) == 2.0
