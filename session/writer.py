"""The write path of the session store: samples and events appended by the recorder.

The recorder writes a batch every quarter second for every running table, so the cost around each
batch matters as much as the rows: the insert statements are built once per store, one database
connection is held by the writer and reused, and rows go to the driver as plain tuples, made one
at a time while it binds them, in one ``executemany`` (on PostgreSQL, large sample batches go
through ``COPY``). Nothing else is updated per batch; the session row's counts and last sample
time are settled when the session finishes.

A row whose (session, seq) is already stored is skipped, so a batch retried after a late
acknowledgement neither duplicates nor fails. On PostgreSQL ``COPY`` cannot skip rows, so a batch
that meets a stored row is rolled back and written again with the insert that skips them.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from devices.records import Sample
    from session.store import NumberedEvent

SAMPLE_COLUMNS = ("session_id", "seq", "t", "target_n", "measured_n", "phase", "cycle")
EVENT_COLUMNS = ("session_id", "seq", "t", "kind", "reason", "data")
Rows = Iterator[tuple[Any, ...]]
"""Sample rows in ``SAMPLE_COLUMNS`` order, streamed (see :func:`_rows`)."""
COPY_FROM_ROWS = 200
"""PostgreSQL sample batches of at least this many rows go through COPY (bench_writes.py)."""


class BatchWriter:
    """Appends samples and events for one store over one held connection.

    Thread-safe: the recorder writes from worker threads, one batch at a time per writer. A
    connection that fails is dropped and a fresh one taken for the next batch, so a database that
    went away and came back is written to again without the caller doing anything.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._conn: Any = None  # one DBAPI connection, detached from the pool, held between batches
        dialect = engine.dialect.name
        self._postgres = dialect == "postgresql"
        mark = "%s" if self._postgres else "?"
        skip = " ON CONFLICT DO NOTHING" if dialect in ("postgresql", "sqlite") else ""
        self._insert_samples = (
            f"INSERT INTO samples ({', '.join(SAMPLE_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(SAMPLE_COLUMNS))}){skip}"
        )
        data = f"{mark}::json" if self._postgres else mark
        self._insert_events = (
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * (len(EVENT_COLUMNS) - 1))}, {data}){skip}"
        )
        self._copy_samples = f"COPY samples ({', '.join(SAMPLE_COLUMNS)}) FROM STDIN"

    def write(
        self, session_id: str, samples: Sequence[Sample], events: Sequence[NumberedEvent]
    ) -> None:
        """Insert the rows in one transaction; on any error nothing of the batch is kept."""
        event_rows = [
            (
                session_id,
                n.seq,
                n.event.t,
                str(n.event.kind),
                n.event.reason,
                json.dumps(n.event.data, default=str),
            )
            for n in events
        ]
        with self._lock:
            conn = self._connection()
            try:
                if self._postgres and len(samples) >= COPY_FROM_ROWS:
                    if not self._copy(conn, _rows(session_id, samples), event_rows):
                        self._insert(conn, _rows(session_id, samples), event_rows)
                else:
                    self._insert(conn, _rows(session_id, samples) if samples else None, event_rows)
            except BaseException:
                self._drop()
                raise

    def close(self) -> None:
        """Give the held connection back; the next batch takes a fresh one."""
        with self._lock:
            self._drop()

    def _connection(self) -> Any:
        if self._conn is None:
            conn = self._engine.raw_connection()
            conn.detach()  # the writer's own: closed by close(), not parked in a pool
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with contextlib.suppress(Exception):  # already broken: closing is all that is left
                conn.rollback()
        finally:
            conn.close()

    def _insert(self, conn: Any, samples: Rows | None, events: list[tuple[Any, ...]]) -> None:
        cursor = conn.cursor()
        try:
            if samples is not None:
                cursor.executemany(self._insert_samples, samples)
            if events:
                cursor.executemany(self._insert_events, events)
        finally:
            cursor.close()
        conn.commit()

    def _copy(self, conn: Any, samples: Rows, events: list[tuple[Any, ...]]) -> bool:
        """COPY the samples; False (rolled back) if one of them is already stored."""
        from psycopg.errors import UniqueViolation  # only on PostgreSQL

        cursor = conn.cursor()
        try:
            with cursor.copy(self._copy_samples) as copy:
                for row in samples:
                    copy.write_row(row)
            if events:
                cursor.executemany(self._insert_events, events)
        except UniqueViolation:
            conn.rollback()
            return False
        finally:
            cursor.close()
        conn.commit()
        return True


def _rows(session_id: str, samples: Sequence[Sample]) -> Rows:
    """The samples as rows, made one at a time while the driver binds them.

    Each row is freed before the next is made. Built as a list, a 5000-row batch keeps 5000
    tuples alive at once, enough to set off the garbage collector, whose passes over a large
    process's heap cost more than building the rows (bench_recorder.py: 0.67 of raw
    ``executemany`` as a list, 0.9 streamed)."""
    return (
        (session_id, s.seq, s.t, s.target_n, s.measured_n, str(s.phase), s.cycle) for s in samples
    )
