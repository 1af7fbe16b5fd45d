"""The access log's group commit (session/audit.py): callers writing at once share a transaction,
each returns only once its own entries are stored, and a failed write is every waiting caller's
error, never a silent loss. On both databases, with another connection holding the write lock."""

from __future__ import annotations

import threading
import time

from conftest_db import query
from test_session_recorder import WriteLock

from session.audit import Access, Accessed, AccessLog
from session.store import Store

CALLERS = 20


def wait_for(condition: object, what: str, limit_s: float = 20.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {limit_s:g} s for {what}")
        time.sleep(0.01)


def entries(url: str) -> int:
    return int(query(url, "SELECT count(*) FROM access_log")[0][0])


def test_callers_who_wait_together_are_committed_together(store: Store, db_url: str) -> None:
    log = AccessLog(store.engine)
    lock = WriteLock(db_url, "access_log")
    lock.acquire()
    returned: list[tuple[int, int]] = []  # (entries it stored, entries in the store on return)

    def read(i: int) -> None:
        stored = log.record(
            f"user{i}", Access.READ, "GET /x", [Accessed(f"s{i}-{k}") for k in range(3)]
        )
        returned.append((stored, entries(db_url)))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(CALLERS)]
    try:
        for thread in threads:
            thread.start()
        # the first caller's write waits on the lock; the others wait for it
        wait_for(lambda: log.callers_waiting == CALLERS, f"{CALLERS} callers waiting")
        assert not returned  # nobody returned before a commit (PostgreSQL's lock blocks reads too)
    finally:
        lock.release()
    for thread in threads:
        thread.join(30)
    assert entries(db_url) == 3 * CALLERS
    assert log.commits == 2  # the first caller alone, then everyone who waited behind it
    # each returned once its own entries were in: the first caller's alone, or everyone's
    assert len(returned) == CALLERS and {stored for stored, _ in returned} == {3}
    assert all(seen in (3, 3 * CALLERS) for _, seen in returned)
    assert sum(seen == 3 for _, seen in returned) <= 1
    assert log.callers_waiting == 0


def test_a_failed_group_write_is_each_waiting_callers_error(store: Store, db_url: str) -> None:
    log = AccessLog(store.engine)
    lock = WriteLock(db_url, "access_log")
    lock.acquire()
    errors: list[BaseException] = []

    def read(i: int) -> None:
        try:
            log.record(f"user{i}", Access.LIST, "GET /sessions", [Accessed(f"s{i}")])
        except Exception as exc:  # what a route would see
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    wait_for(lambda: log.callers_waiting == 5, "5 callers waiting")
    lock.rename_away()  # the table is gone: the waiting write fails, and the next group's too
    for thread in threads:
        thread.join(30)
    assert len(errors) == 5 and all("access_log" in str(e) for e in errors), errors
    assert log.callers_waiting == 0 and log.commits == 0
