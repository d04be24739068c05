"""Episode bookkeeping: one running episode, ended exactly once, time limit as failure."""
import pytest

from aloe.control.episodes import ABORT, FAILURE, START, SUCCESS, EpisodeBook, EpisodeError


def test_episode_lifecycle_and_unique_ids():
    book = EpisodeBook(robot="sim")
    first = book.start("insertion", "put the phone in the box", seed=1, variant="train", now=1_000_000.0)
    assert first.episode_id.startswith("sim-19700112T") and first.episode_id.endswith("-0001")
    with pytest.raises(EpisodeError, match="still running"):
        book.start("sorting", "", seed=2, variant="train", now=1_000_001.0)
    ended = book.end(SUCCESS, "detector", now=1_000_010.0)
    assert ended is first and ended.outcome == SUCCESS and ended.end_time == 1_000_010.0
    second = book.start("sorting", "", seed=2, variant="train", now=1_000_001.0)
    assert second.episode_id != first.episode_id
    assert book.end(ABORT, "operator", now=1_000_002.0).outcome == ABORT
    # An outcome its sender stamped before the START reached it ends the episode at its start.
    book.start("sorting", "", seed=2, variant="train", now=1_000_005.0)
    assert book.end(SUCCESS, "detector", now=1_000_004.0).end_time == 1_000_005.0
    # A sim clock that has not started yet reads 0; the id is stamped with the wall time.
    third = book.start("drawer", "", seed=3, variant="train", now=0.0, wall_time=1_800_000_000.0)
    assert third.episode_id.startswith("sim-20270115T") and third.start_time == 0.0


def test_bad_requests_are_refused_with_a_reason():
    book = EpisodeBook(robot="sim")
    with pytest.raises(EpisodeError, match="no episode is running"):
        book.end(FAILURE, "", now=0.0)
    with pytest.raises(EpisodeError, match="task name is required"):
        book.start("", "", seed=0, variant="", now=0.0)
    book.start("insertion", "", seed=0, variant="", now=0.0)
    with pytest.raises(EpisodeError, match="not one of SUCCESS=1, FAILURE=2, ABORT=3"):
        book.end(START, "", now=1.0)
    assert book.current is not None  # a refused end leaves the episode running


def test_time_limit_ends_the_episode_as_failure_once():
    book = EpisodeBook(robot="sim", time_limit_s=5.0)
    book.start("insertion", "", seed=0, variant="", now=10.0)
    assert book.expire(now=14.9) is None
    expired = book.expire(now=15.0)
    assert expired.outcome == FAILURE and "time limit of 5 s" in expired.reason
    assert book.expire(now=20.0) is None
