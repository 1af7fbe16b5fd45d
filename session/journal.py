"""A treatment's journal: its records on local disk first, before any database sees them.

One file per session, ``<run_id>.journal`` in the workstation's journal directory, append-only, one
JSON document per line: a header with the session's context, then ``started``, ``sample``, ``event``
and ``finished`` records as the control loop published them (events carry their sequence number).
The recorder ingests the journal into the store at its own pace, so a database that is slow or away
for hours costs only delay; the journal is removed once the session is sealed in the store.

The journal is also the session's lease: the process that writes it holds an exclusive OS lock
(``flock``) on it from before the session exists in the store until after it is sealed. The kernel
drops the lock when the process ends, however it ends, so a journal whose lock can be taken belongs
to a process that is provably gone (:func:`claim`, used by :mod:`session.recovery`). A journal is
created under a temporary name, locked, then renamed into place, so no one can ever find a journal
whose owner has not locked it yet.

A process killed mid-write leaves at most one torn last line; readers stop before it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devices.errors import TractionError
from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample, Started
from session.numbered import NumberedEvent

if TYPE_CHECKING:
    from session.store import SessionContext

SUFFIX = ".journal"
FORMAT_VERSION = 1
MAX_LINE_BYTES = 4 * 1024 * 1024  # a Started record with a long profile is a few KiB

Item = Started | Sample | NumberedEvent | Finished


class JournalError(TractionError):
    """A journal that cannot be read as one; the message names the file and the offset."""


def journal_path(directory: Path, run_id: str) -> Path:
    return directory / f"{run_id}{SUFFIX}"


# --- lines --------------------------------------------------------------------------------------


def encode(item: Item) -> bytes:
    """One record as one line. Samples are positional (they are nearly every line)."""
    doc: Any
    if isinstance(item, Sample):
        doc = ["s", item.seq, item.t, item.target_n, item.measured_n, str(item.phase), item.cycle]
    elif isinstance(item, NumberedEvent):
        e = item.event
        doc = {"k": "event", "seq": item.seq, "t": e.t, "kind": str(e.kind), "reason": e.reason}
        doc["data"] = e.data
    elif isinstance(item, Started):
        doc = {"k": "started", **item.to_dict()}
    else:
        doc = {"k": "finished", **item.to_dict()}
    return json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, run_id: str) -> Item:
    """The record a line holds (``run_id`` fills in what sample and event lines leave out)."""
    doc = json.loads(line)
    if isinstance(doc, list):
        _, seq, t, target, measured, phase, cycle = doc
        return Sample(run_id, seq, t, target, measured, Phase(phase), cycle)
    kind = doc.pop("k")
    if kind == "event":
        event = Event(run_id, doc["t"], EventKind(doc["kind"]), doc["reason"], doc["data"])
        return NumberedEvent(doc["seq"], event)
    if kind == "started":
        doc["wall"] = datetime.fromisoformat(doc["wall"])
        return Started(**doc)
    if kind == "finished":
        doc["wall"] = datetime.fromisoformat(doc["wall"])
        doc["outcome"] = Outcome(doc["outcome"])
        return Finished(**doc)
    raise ValueError(f"unknown record kind {kind!r}")


def _header(run_id: str, context: SessionContext) -> bytes:
    doc = {"k": "journal", "version": FORMAT_VERSION, "run_id": run_id, "context": asdict(context)}
    return json.dumps(doc, default=str, separators=(",", ":")).encode() + b"\n"


def _context(doc: dict[str, Any]) -> SessionContext:
    from session.store import SessionContext  # the store's weight only where journals are read

    fields = dict(doc)
    for name in ("regions", "diagnosis_codes"):
        fields[name] = tuple(fields.get(name) or ())
    return SessionContext(**fields)


# --- writing ------------------------------------------------------------------------------------


class JournalWriter:
    """The owner's side: creates the journal, holds its lock, appends records.

    ``append`` only queues bytes in memory (it runs in the control loop's path); ``take`` hands the
    queued bytes to whoever writes them, and ``write`` puts them on disk (``os.write`` then
    ``fsync``; call it off the event loop). Close the writer only after the session is sealed or
    the process is giving up: closing releases the lease.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._pending: list[bytes] = []
        self.closed = False

    @classmethod
    def create(cls, directory: Path, run_id: str, context: SessionContext) -> JournalWriter:
        directory.mkdir(parents=True, exist_ok=True)
        final = journal_path(directory, run_id)
        draft = directory / f".{run_id}.{uuid.uuid4().hex[:8]}.draft"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(draft, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, _header(run_id, context))
            if final.exists():
                raise JournalError(f"journal {final} already exists; run ids are never reused")
            os.rename(draft, final)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                draft.unlink()
            raise
        return cls(final, fd)

    def fileno(self) -> int:
        return self._fd

    def append(self, item: Item) -> bytes:
        """Queue ``item`` for the next write; its line, for anyone else who wants it."""
        line = encode(item)
        self._pending.append(line)
        return line

    def take(self) -> bytes:
        """Everything appended since the last ``take``, in order."""
        data, self._pending = b"".join(self._pending), []
        return data

    def write(self, data: bytes, sync: bool = True) -> None:
        """Append ``data`` whole or not at all (a failed write is cut back off, so a retry never
        leaves half a line in the middle of the journal)."""
        if data:
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                _write_all(self._fd, data)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
                raise
        if sync:
            os.fsync(self._fd)

    def put_back(self, data: bytes) -> None:
        """Queue ``data`` (from a failed ``write``) again, ahead of anything appended since."""
        if data:
            self._pending.insert(0, data)

    def remove(self) -> None:
        """Delete the journal (its session is sealed in the store), then let go of the lease."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- reading ------------------------------------------------------------------------------------


class JournalReader:
    """Reads a journal's records in order, in bounded batches, from where it left off.

    ``peek(n)`` returns up to ``n`` whole records after the current position and the position
    after them, without moving; ``advance(position)`` moves once they are safely stored. A
    ``finished`` record always comes in a batch of its own, so what precedes it is stored before
    the session is closed. A line still being written (no newline yet) is left for the next call.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("rb")
        try:
            first = self._file.readline(MAX_LINE_BYTES)
            doc = json.loads(first)
            if not first.endswith(b"\n") or doc.get("k") != "journal":
                raise ValueError("no journal header")
            if doc.get("version") != FORMAT_VERSION:
                raise ValueError(f"format version {doc.get('version')} is not {FORMAT_VERSION}")
            self.run_id: str = doc["run_id"]
            self.context = _context(doc["context"])
        except (ValueError, KeyError, TypeError) as exc:
            self._file.close()
            raise JournalError(f"journal {path}: unreadable header ({exc})") from None
        self.position = self._file.tell()

    def peek(self, limit: int) -> tuple[list[Item], int]:
        items: list[Item] = []
        self._file.seek(self.position)
        end = self.position
        while len(items) < limit:
            line = self._file.readline(MAX_LINE_BYTES)
            if not line.endswith(b"\n"):
                if len(line) >= MAX_LINE_BYTES:
                    raise JournalError(f"journal {self.path}: line at byte {end} is too long")
                break  # end of file, or a line still being written
            try:
                item = decode(line, self.run_id)
            except (ValueError, KeyError, TypeError) as exc:
                raise JournalError(
                    f"journal {self.path}: bad record at byte {end} ({exc})"
                ) from None
            if isinstance(item, Finished) and items:
                break
            items.append(item)
            end += len(line)
            if isinstance(item, Finished):
                break
        return items, end

    def advance(self, position: int) -> None:
        self.position = position

    def __iter__(self) -> Iterator[list[Item]]:
        """Every remaining record, a batch at a time (for recovery: nothing is writing)."""
        while True:
            items, end = self.peek(2000)
            if not items:
                return
            yield items
            self.advance(end)

    def close(self) -> None:
        self._file.close()


@dataclass
class ClaimedJournal:
    """A journal whose owner is gone, locked by the process recovering it."""

    path: Path
    fd: int

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def set_aside(self, suffix: str) -> Path:
        """Keep a journal that cannot be ingested under another name, for a person to look at."""
        aside = self.path.with_name(self.path.name + suffix)
        os.rename(self.path, aside)
        self.release()
        return aside

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def claim(path: Path) -> ClaimedJournal | None:
    """Take the lease of a journal if its owner is gone; None while a live process holds it (or
    if it was removed meanwhile, its session sealed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if os.fstat(fd).st_nlink == 0:  # removed between listing and locking: sealed and done
        os.close(fd)
        return None
    return ClaimedJournal(path, fd)


def journals(directory: Path) -> list[Path]:
    """The journals in ``directory``, by name."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.name.endswith(SUFFIX) and p.is_file())


def remove_abandoned_drafts(directory: Path) -> int:
    """Remove drafts whose process died between making and placing its journal (they hold no
    record: the header only); return how many."""
    removed = 0
    if not directory.is_dir():
        return removed
    for draft in directory.glob(".*.draft"):
        claimed = claim(draft)
        if claimed is not None:
            claimed.remove()
            removed += 1
    return removed


def is_owned(path: Path) -> bool:
    """Whether a live process holds this journal's lease (for tests and status views)."""
    claimed = claim(path)
    if claimed is None:
        return path.exists()
    claimed.release()
    return False
