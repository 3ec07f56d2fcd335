"""Micro-batching: concurrent requests are scored together on the one loaded router.

Each request submits its queries and awaits their probabilities. A worker takes the first waiting
request and every request already waiting behind it (up to ``max_batch`` queries; with ``window_s`` > 0
it also waits that long for more), runs one ``predict`` in a single background thread (the event loop
keeps accepting requests meanwhile) and hands each request its rows. With no window a lone request
is scored at once, and requests that arrive while a batch runs form the next one.

One thread scores every batch, and it should be the thread that loaded the router (``serve`` loads it
through ``pool``): torch's OpenMP threads are fastest when a single thread runs torch. Once a second
thread has run torch, each gets its own team of OpenMP threads, more threads than this 2-core CPU
has, and every parallel region then sleeps and wakes its threads: one query took 13 ms instead of 7
(BENCHMARKS.md, section 3).

That thread and the event loop share one GIL. Torch releases it inside each operation and takes it
back between operations; when the event loop holds it (parsing a burst of requests), the scoring thread
waits up to the interpreter's switch interval (5 ms by default) before it can ask for it back, while
torch's cores idle. ``serve`` sets the interval to ``SWITCH_INTERVAL_S`` (0.5 ms; ``--switch-interval-ms``):
on 2 cores at 32 clients, 84.2 against 81.1 queries/s with Python's 5 ms (0.89x against 0.86x of
in-process batched predict; ``benchmarks/switch_interval.py``, BENCHMARKS.md section 3).

The queue is bounded (``max_queue`` requests): ``submit`` raises ``QueueFull`` rather than let waits
grow without end. The worker is supervised: an error in one batch fails that batch's requests only,
and a worker that dies is restarted on the next ``submit``.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np

SWITCH_INTERVAL_S = 0.0005  # sys.setswitchinterval in serve: see the module docstring


def scoring_thread() -> ThreadPoolExecutor:
    """The one thread that runs the router: load it here too (``pool.submit(...).result()``)."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="router")


class QueueFull(Exception):
    """The micro-batch queue holds ``max_queue`` requests already."""


class MicroBatcher:
    def __init__(self, predict: Callable[[list[str]], np.ndarray], window_s: float = 0.0, max_batch: int = 64,
                 on_batch: Callable[[int], None] | None = None, max_queue: int = 1024, pool: ThreadPoolExecutor | None = None):
        self.predict = predict
        self.window_s = window_s
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda size: None)
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.pool = pool or scoring_thread()

    async def start(self) -> None:
        self.queue = asyncio.Queue(maxsize=self.max_queue)
        self.worker = asyncio.create_task(self.run())

    async def close(self) -> None:
        if self.worker:
            self.worker.cancel()
            try:
                await self.worker
            except asyncio.CancelledError:
                pass
        self.pool.shutdown(wait=True)

    async def submit(self, queries: Sequence[str]) -> np.ndarray:
        """P(correct) per (query, model) for ``queries``, scored in a batch with other waiting requests."""
        if self.worker is None or self.worker.done():  # supervised: a dead worker is replaced
            self.worker = asyncio.create_task(self.run())
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait((list(queries), future))
        except asyncio.QueueFull:
            raise QueueFull(f"the routing queue holds {self.max_queue} requests") from None
        return await future

    async def collect(self) -> list:
        """The next batch: the first waiting request, those already queued and, with a window, those arriving within it."""
        batch = [await self.queue.get()]
        size = len(batch[0][0])
        deadline = time.monotonic() + self.window_s
        while size < self.max_batch:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            batch.append(item)
            size += len(item[0])
        return batch

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self.collect()
            try:
                texts = [q for queries, _ in batch for q in queries]
                probs = await loop.run_in_executor(self.pool, self.predict, texts)
                self.on_batch(len(texts))
                start = 0
                for queries, future in batch:
                    if not future.done():  # a client that went away leaves a cancelled future
                        future.set_result(probs[start : start + len(queries)])
                    start += len(queries)
            except Exception as err:  # this batch's requests get the error; the worker goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
