"""The background step runner: order, one step pending, errors never lost, no live step after the block."""

from __future__ import annotations

import threading
import time

import pytest

from connectome_dask import _threads
from connectome_dask._threads import Background


@pytest.fixture(params=["thread", "inline"])
def make(request, monkeypatch):
    if request.param == "inline":  # one CPU: the steps run in the caller
        monkeypatch.setattr(_threads.os, "cpu_count", lambda: 1)
    return Background


def test_steps_run_in_order_one_at_a_time(make):
    log: list[tuple[str, int]] = []
    running = []

    def step(i):
        running.append(i)
        assert len(running) == 1, "two steps ran at once"
        time.sleep(0.002 * (i % 3))  # uneven steps: order must not depend on their length
        log.append(("step", i))
        running.pop()

    with make() as bg:
        for i in range(20):
            bg.submit(step, i)
            log.append(("made", i + 1))
    assert [i for kind, i in log if kind == "step"] == list(range(20))
    # a step is submitted only after the one before it finished: step i precedes the caller's "made i + 2"
    pos = {entry: k for k, entry in enumerate(log)}
    assert all(pos[("step", i)] < pos[("made", i + 2)] for i in range(18))


def test_a_steps_error_is_raised_at_the_next_submit():
    ran = []

    def boom():
        raise ValueError("bad block")

    bg = Background()
    bg.submit(boom)  # on the thread: the error waits for the caller's next call
    with pytest.raises(ValueError, match="bad block"):
        bg.submit(ran.append, 1)
    assert ran == []  # the step after a failed one never runs
    bg.close()


def test_inline_steps_raise_at_once(monkeypatch):
    monkeypatch.setattr(_threads.os, "cpu_count", lambda: 1)
    with pytest.raises(ValueError, match="bad"), Background() as bg:
        bg.submit(int, "bad")


def test_a_steps_error_is_raised_at_close(make):
    def boom():
        raise ValueError("last block")

    with pytest.raises(ValueError, match="last block"), make() as bg:
        bg.submit(boom)


def test_the_callers_error_wins_and_the_step_has_finished():
    done = threading.Event()

    def slow():
        time.sleep(0.05)
        done.set()
        raise OSError("disk full")  # secondary to the caller's own error

    with pytest.raises(KeyError), Background() as bg:
        bg.submit(slow)
        raise KeyError("caller")
    assert done.is_set()  # leaving the block waited for the running step
