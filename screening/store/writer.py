"""Writes call-log rows on a thread of its own, in batches, after each call has moved on."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from screening.store.calllog import CallRecord, repairs, write_call_log
from screening.store.watchdog import Watchdog

log = logging.getLogger(__name__)

#: A batch of call-log rows takes a few milliseconds; one that has not finished in this
#: long is on a hung connection (store.watchdog).
WRITE_HUNG_S = 10.0
#: After the first row of a batch, wait this long for more: one commit for the calls of the
#: next 50 ms rather than one per call (a commit per call was about a tenth of the door's
#: CPU per call at 200 calls/s; bench/cpu.py).
LINGER_S = 0.05
#: Rows kept in memory while the database is away (about 1 KB each): hours of calls at
#: 200 calls/s. Past it, new rows are counted lost rather than let memory grow without end.
MAX_PENDING = 200_000


class CallLogWriter:
    """Writes call-log rows in batches, after the call has already moved on. Rows wait in
    memory while the database is away and are written when it returns."""

    def __init__(
        self,
        engine: Engine,
        batch: int = 500,
        hung_after: float = WRITE_HUNG_S,
        linger: float = LINGER_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self._engine = engine
        self._batch = batch
        self._linger = linger
        self._max_pending = max_pending
        self._full_warned = False
        self._queue: asyncio.Queue[CallRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._unwritten = 0  # queued or in a batch, not yet committed
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="call-log")
        self._watchdog = Watchdog("call log", hung_after)
        #: Told "repaired" or "set_aside" for each row the database refused (a metric).
        self.on_refused: Callable[[str], None] = lambda outcome: None
        #: Told of each row dropped because MAX_PENDING rows were waiting already.
        self.on_dropped: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Open the writer's connection, before the first call rather than during it, and
        start writing."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
        self._task = asyncio.create_task(self._run(), name="call-log-writer")

    @property
    def pending(self) -> int:
        """Rows queued or in a batch, not yet committed."""
        return self._unwritten

    def add(self, record: CallRecord) -> None:
        if self._unwritten >= self._max_pending:
            self.on_dropped()
            if not self._full_warned:
                self._full_warned = True
                log.error(
                    "%d call-log rows wait for the database already: later rows are dropped "
                    "(counted in screening_call_log_rows_lost) until it takes them",
                    self._max_pending,
                )
            return
        self._full_warned = False
        self._unwritten += 1
        self._queue.put_nowait(record)

    async def flush(self) -> None:
        """Wait until every row queued so far is written."""
        await self._queue.join()

    async def close(self, within: float = 10.0) -> int:
        """Write every pending row, then stop. Returns how many rows could not be written
        because the database stayed away for `within` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), within)
        if self._task is not None:
            self._task.cancel()
        self._thread.shutdown(wait=False, cancel_futures=True)
        return self._unwritten

    def dispose(self) -> None:
        self._engine.dispose()

    def _open(self) -> None:
        with contextlib.suppress(Exception), self._engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")  # if it fails, the first write says why

    def _write(self, rows: list[CallRecord]) -> None:
        with Session(self._engine) as session, self._watchdog.watching(session.connection()):
            write_call_log(session, rows)
            session.commit()

    def _write_or_sort_out(self, rows: list[CallRecord]) -> None:
        """Write a batch; if the database refuses it while it is there to refuse, write its
        rows one by one, repair a row it refuses (a NUL, a character its table cannot hold)
        and set aside one it still refuses, with a log line and a metric, so that one bad
        row never holds up the rows after it. Raises when the database is away (the caller
        keeps the rows and tries again)."""
        try:
            self._write(rows)
            return
        except Exception:
            if not self._reachable():
                raise
        for row in rows:
            self._write_one(row)

    def _write_one(self, row: CallRecord) -> None:
        error: Exception | None = None
        for attempt in (row, *repairs(row)):
            try:
                self._write([attempt])
            except Exception as e:
                if not self._reachable():
                    raise
                error = e
                continue
            if attempt is not row:
                self.on_refused("repaired")
                log.warning(
                    "call-log row of %s refused by the database (%s); written repaired",
                    row.channel_id[:64],
                    _first_line(error),
                )
            return
        self.on_refused("set_aside")
        log.error(
            "call-log row refused by the database even repaired (%s); set aside: %s",
            _first_line(error),
            json.dumps(dataclasses.asdict(row), default=str, ensure_ascii=True)[:2000],
        )

    def _reachable(self) -> bool:
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception:
            return False
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rows = [await self._queue.get()]
            if self._linger and self._queue.qsize() < self._batch:
                await asyncio.sleep(self._linger)
            while len(rows) < self._batch and not self._queue.empty():
                rows.append(self._queue.get_nowait())
            delay = 0.1
            while True:
                try:
                    await loop.run_in_executor(self._thread, self._write_or_sort_out, rows)
                    self._unwritten -= len(rows)
                    break
                except Exception as e:
                    if not self._failing:
                        log.warning(
                            "cannot write the call log (%s); keeping rows until it works", e
                        )
                        self._failing = True
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if self._failing:
                log.warning("call log writes work again")
                self._failing = False
            for _ in rows:
                self._queue.task_done()


def _first_line(error: Exception | None) -> str:
    return str(error).strip().splitlines()[0][:200] if error else "?"
