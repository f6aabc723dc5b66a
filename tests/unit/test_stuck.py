"""The rule that finds a stuck consumer: an operation (a commit, a poll) failing for a while after the broker has
answered again."""

from __future__ import annotations

from streamsend.downloader.stuck import StallWatch
from tests.support.clock import Clock


def _watch() -> tuple[StallWatch, Clock]:
    clock = Clock(100.0)
    return StallWatch(after_s=30, clock=clock), clock


def test_commits_failing_while_the_broker_answers_are_stuck_after_the_delay() -> None:
    watch, clock = _watch()
    watch.failed()
    clock.now += 5
    watch.broker_answered()
    clock.now += 29
    watch.failed()
    assert not watch.stuck()
    clock.now += 1
    assert watch.stuck() and watch.failing_for() == 35


def test_a_broker_that_answers_nothing_is_an_outage_not_a_stuck_consumer() -> None:
    watch, clock = _watch()
    watch.failed()
    clock.now += 600
    watch.failed()
    assert not watch.stuck()


def test_a_broker_back_after_a_long_outage_gets_the_whole_delay_to_take_commits() -> None:
    watch, clock = _watch()
    watch.failed()
    clock.now += 300  # down all that time
    watch.broker_answered()
    clock.now += 10
    assert not watch.stuck()
    clock.now += 20
    assert watch.stuck()


def test_one_commit_that_succeeds_starts_everything_over() -> None:
    watch, clock = _watch()
    watch.failed()
    watch.broker_answered()
    clock.now += 25
    watch.succeeded()
    watch.failed()
    clock.now += 10
    watch.broker_answered()
    clock.now += 25
    assert not watch.stuck() and watch.failing_for() == 35
    clock.now += 5
    assert watch.stuck()


def test_answers_while_commits_succeed_do_not_count() -> None:
    watch, clock = _watch()
    watch.broker_answered()
    clock.now += 60
    watch.failed()
    assert not watch.stuck()
    watch.reset()
    assert watch.failing_for() == 0
