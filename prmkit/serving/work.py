"""One worker thread for the model, a bounded queue in front of it, and cancellation.

A server holds one model, and the model computes one thing at a time: requests become ``Job``s
that wait here, oldest first, for the thread that owns the model. At most ``capacity`` jobs wait
(the ones running are not counted): beyond, ``submit`` refuses at once, and the server answers
503, so that a flood costs a refusal each rather than memory. ``batch`` jobs are handed to the
worker together: 1 for a generator (each request is its own batch already), more for a reward
model that scores many short requests in one forward pass.

A job is cancelled when its client goes: if it waits, it leaves the queue; if it runs, the work
calls ``job.check()`` as it goes (after every generated token) and stops there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

log = logging.getLogger("prmkit.serve")
_END = object()  # the last update of a streaming job


class Cancelled(Exception):
    """Raised by ``Job.check`` in the worker: nobody waits for this job any more."""


class QueueFull(Exception):
    """``capacity`` jobs are waiting already."""


class Job:
    """One request's work: its input (``payload``), its outcome, the updates of a streaming
    reply, and the cancel flag its work checks. Made on the server's event loop; the worker
    thread reports to it with ``update``, ``succeed`` and ``fail``."""

    def __init__(self, payload, *, streaming: bool = False):
        self.payload = payload
        self._loop = asyncio.get_running_loop()
        self._outcome = self._loop.create_future()
        # a cancelled job's failure is never awaited: retrieve it so asyncio does not warn
        self._outcome.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._updates: asyncio.Queue | None = asyncio.Queue() if streaming else None
        self._cancelled = threading.Event()

    # -- from the worker thread --------------------------------------------------------------

    def check(self) -> None:
        """Raise ``Cancelled`` if the job's client has gone."""
        if self._cancelled.is_set():
            raise Cancelled()

    def update(self, item) -> None:
        """A piece of a streaming reply (nothing for a job that does not stream)."""
        if self._updates is not None:
            self._call(self._updates.put_nowait, item)

    def succeed(self, result) -> None:
        self._call(self._settle, result, None)

    def fail(self, error: BaseException) -> None:
        self._call(self._settle, None, error)

    def _call(self, function, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(function, *args)
        except RuntimeError:  # the loop has closed (the server stopped): nobody waits
            pass

    def _settle(self, result, error) -> None:
        if self._outcome.done():  # settled already, or its waiter was cancelled
            return
        if error is None:
            self._outcome.set_result(result)
        else:
            self._outcome.set_exception(error)
        if self._updates is not None:
            self._updates.put_nowait(_END)

    # -- from the event loop -----------------------------------------------------------------

    @property
    def settled(self) -> bool:
        return self._outcome.done()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def cancel(self) -> None:
        self._cancelled.set()

    async def outcome(self):
        # shielded: a waiter that is cancelled (its client gone) must not settle the job; the
        # job is settled by its worker, which is told to stop by ``WorkQueue.cancel``
        return await asyncio.shield(self._outcome)

    async def updates(self) -> AsyncIterator:
        """A streaming job's updates as they come, until it is settled."""
        while (item := await self._updates.get()) is not _END:
            yield item


class WorkQueue:
    """Jobs waiting for the one worker thread; ``handle(jobs)`` runs there and settles each job
    (one it leaves unsettled, or an exception it raises, fails them)."""

    def __init__(self, handle: Callable[[list[Job]], None], *, capacity: int, batch: int = 1,
                 name: str = "prmkit-model"):
        if capacity < 1 or batch < 1:
            raise ValueError("capacity and batch must be at least 1")
        self.capacity, self.batch = capacity, batch
        self._handle = handle
        self._waiting: deque[Job] = deque()
        self._running: list[Job] = []
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def full(self) -> bool:
        return len(self._waiting) >= self.capacity

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._changed:
            if self._stopping or len(self._waiting) >= self.capacity:
                raise QueueFull()
            self._waiting.append(job)
            self._changed.notify()

    def cancel(self, job: Job) -> None:
        """Stop ``job``: out of the queue if it waits, at its next check if it runs."""
        job.cancel()
        with self._changed:
            try:
                self._waiting.remove(job)
            except ValueError:  # running, or done
                return
        job.fail(Cancelled())

    def stop(self, timeout: float = 10) -> None:
        """Cancel every job, waiting or running, and end the worker thread."""
        with self._changed:
            self._stopping = True
            dropped, running = list(self._waiting), list(self._running)
            self._waiting.clear()
            self._changed.notify_all()
        for job in dropped:
            job.cancel()
            job.fail(Cancelled())
        for job in running:
            job.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                while not self._waiting and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
                take = min(self.batch, len(self._waiting))
                self._running = [self._waiting.popleft() for _ in range(take)]
            jobs = self._running
            try:
                self._handle(jobs)
            except Cancelled as e:
                error: BaseException = e
            except Exception as e:  # a bug: logged here, the clients get a 500
                log.exception("the model's worker failed")
                error = e
            else:
                error = RuntimeError("the worker left a job unsettled")
            for job in jobs:
                job.fail(error)  # no-op for the jobs settled already
            with self._changed:
                self._running = []
