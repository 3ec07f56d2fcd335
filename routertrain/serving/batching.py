"""Micro-batching: concurrent requests are scored together on the one loaded router.

Each request submits its queries and awaits their probabilities. A worker takes the first waiting
request, collects more for up to ``window_s`` seconds or until ``max_batch`` queries, runs one
``predict`` in a single background thread (the event loop keeps accepting requests meanwhile) and
hands each request its rows.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np


class MicroBatcher:
    def __init__(self, predict: Callable[[list[str]], np.ndarray], window_s: float = 0.005, max_batch: int = 64,
                 on_batch: Callable[[int], None] | None = None):
        self.predict = predict
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_batch = on_batch or (lambda size: None)
        self.queue: asyncio.Queue | None = None
        self.worker: asyncio.Task | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="router")

    async def start(self) -> None:
        self.queue = asyncio.Queue()
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
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((list(queries), future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0][0])
            deadline = time.monotonic() + self.window_s
            while size < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                batch.append(item)
                size += len(item[0])
            texts = [q for queries, _ in batch for q in queries]
            try:
                probs = await loop.run_in_executor(self.pool, self.predict, texts)
            except Exception as err:  # handed to every waiting request
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.on_batch(len(texts))
            start = 0
            for queries, future in batch:
                if not future.done():  # a client that went away leaves a cancelled future
                    future.set_result(probs[start : start + len(queries)])
                start += len(queries)
