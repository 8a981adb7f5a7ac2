"""Overlapping a loop's two halves on two cores: a step runs on a background thread while the next input is made.

Ingest is a chain of numpy, numba, pyarrow and blosc calls that release the
GIL: reading and converting a batch, then spilling it; sorting a bucket,
then compressing and writing it. Run one after the other, one core waits.
:class:`Background` runs the second half of each iteration on one worker
thread, in order, at most one call pending, while the caller prepares the
next iteration's input. The caller never waits for more than one step.

``concurrent.futures`` gives the thread; what it does not give is the
discipline kept here. Calls run strictly in submission order, at most one is
outstanding, and an error in a step is raised in the caller at its next
:meth:`~Background.submit` or at :meth:`~Background.close`, never lost.
Leaving the ``with`` block waits for the last step, so the caller's own
clean-up (aborting a write) never runs under a live step.

Nothing here imports from the rest of the package.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["Background"]

log = logging.getLogger("connectome_dask")


class Background:
    """Run calls in order on one background thread, one pending at a time.

    With one CPU the calls run inline, in the caller's thread.

    Parameters
    ----------
    name
        Thread name prefix (seen in profiles and ``py-spy`` dumps).

    Examples
    --------
    >>> out = []
    >>> with Background() as bg:
    ...     for i in range(3):
    ...         bg.submit(out.append, i * i)  # runs while the next i is made
    >>> out
    [0, 1, 4]
    """

    def __init__(self, name: str = "connectome-dask-step") -> None:
        self._inline = (os.cpu_count() or 1) < 2
        self._ex = None if self._inline else ThreadPoolExecutor(1, thread_name_prefix=name)
        self._pending: Future | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` after the previous call has finished (its error, if any, is raised here first).

        Parameters
        ----------
        fn, args
            The step and its arguments. The caller must not change the
            arguments' contents until the step has run (the next
            :meth:`submit` or :meth:`wait` returns).
        """
        self.wait()
        if self._ex is None:
            fn(*args)
            return
        self._pending = self._ex.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the pending call, re-raising its error."""
        fut, self._pending = self._pending, None
        if fut is not None:
            fut.result()

    def close(self) -> None:
        """Wait for the pending call and stop the thread (the call's error is raised after the thread stops)."""
        try:
            self.wait()
        finally:
            if self._ex is not None:
                self._ex.shutdown(wait=True)

    def __enter__(self) -> Background:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        # an error in the caller: still wait for the running step (its own error is secondary), then stop
        try:
            self.close()
        except Exception as step_error:  # noqa: BLE001 - the caller's exception is the one raised
            log.debug("a background step failed after the caller's own error: %r", step_error)
