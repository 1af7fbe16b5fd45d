"""A workstation's identity: made once, on its first start, and kept in its data directory.

The configured ``workstation`` name is a label people read; two workstations may well share one (a
copied example config). What the store keys ownership on is the identity: a random UUID written to
``workstation.json`` in the data directory the first time any command starts there, with the
fingerprint of the computer that made it. Everything a workstation's running sessions leave behind
(their journals) lives in that same directory, so the identity is exactly the scope in which a
session's owner can be proved gone (see :mod:`session.recovery`).

A data directory copied to another computer carries the identity with it; two live computers would
then claim one identity, and each could take the other's running sessions for dead. That is
refused, on both computers, with what to do about it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from session.errors import IdentityError
from session.models import Workstation

IDENTITY_FILE = "workstation.json"
_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))


@dataclass(frozen=True)
class WorkstationIdentity:
    """Who this workstation is: ``id`` (unique, made once), ``label`` (the configured name),
    ``machine`` (the computer it belongs to) and ``data_dir`` (where its journals live)."""

    id: str
    label: str
    machine: str
    data_dir: Path

    @property
    def journal_dir(self) -> Path:
        """Where this workstation's treatments write their journals."""
        return self.data_dir / "journals"


def machine_fingerprint() -> str:
    """The host name and the OS machine id (when there is one): stable across restarts,
    different on a cloned disk once the clone gets its own machine id or host name."""
    host = socket.gethostname()
    for path in _MACHINE_ID_FILES:
        with contextlib.suppress(OSError):
            machine_id = path.read_text(encoding="ascii").strip()
            if machine_id:
                return f"{host}/{machine_id[:32]}"
    return host


def load_identity(data_dir: Path, label: str, machine: str | None = None) -> WorkstationIdentity:
    """This workstation's identity, made on first start (safe when several processes start at
    once: exactly one file wins and everyone reads it). Refuses an identity made on another
    computer."""
    machine = machine or machine_fingerprint()
    path = data_dir / IDENTITY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{IDENTITY_FILE}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        draft.write_text(
            json.dumps(
                {
                    "id": str(uuid.uuid4()),
                    "machine": machine,
                    "data_dir": str(data_dir.resolve()),
                    "created_at": _now(),
                }
            ),
            encoding="utf-8",
        )
        try:
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)  # atomic: fails if another process made it first
        finally:
            draft.unlink()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        identity = WorkstationIdentity(str(uuid.UUID(data["id"])), label, data["machine"], data_dir)
        made_in = Path(data["data_dir"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IdentityError(
            f"workstation identity file {path} is unreadable ({exc}); if no session is running "
            "here, move it aside and start again to make a new identity"
        ) from None
    if identity.machine != machine:
        raise IdentityError(
            f"workstation identity {identity.id} in {path} was made on computer "
            f"{identity.machine!r}, not this one ({machine!r}): the data directory was copied. "
            "Two computers must never share an identity (each would take the other's running "
            f"sessions for dead). On this computer, if no session is running here, remove {path} "
            "to make a new identity, or point data_dir elsewhere."
        )
    if made_in != data_dir.resolve():
        raise IdentityError(
            f"workstation identity {identity.id} in {path} was made for data directory "
            f"{made_in}, not {data_dir.resolve()}: the directory was copied, and two copies "
            "would each take the other's running sessions for dead. If no session is running "
            f"from this directory, remove {path} to make a new identity."
        )
    return identity


def register(engine: Engine, identity: WorkstationIdentity) -> None:
    """Record the identity in the store (first start) or refresh its label; refuse an identity
    that the store knows from another computer. Two processes of one workstation registering at
    once both succeed."""
    try:
        _register(engine, identity)
    except IntegrityError:  # the other one inserted the row first: now it is there to update
        _register(engine, identity)


def _register(engine: Engine, identity: WorkstationIdentity) -> None:
    now = datetime.now(UTC)
    with Session(engine) as db:
        row = db.get(Workstation, identity.id)
        if row is None:
            row = Workstation(
                id=identity.id,
                label=identity.label,
                machine=identity.machine,
                first_seen_at=now,
                last_seen_at=now,
            )
        elif row.machine != identity.machine:
            raise IdentityError(
                f"workstation identity {identity.id} (label {identity.label!r}) is already "
                f"claimed in the store by computer {row.machine!r} (label {row.label!r}); this "
                f"computer ({identity.machine!r}) was given a copy of its data directory. Remove "
                f"{identity.data_dir / IDENTITY_FILE} here to make a new identity."
            )
        else:
            row.label = identity.label
            row.last_seen_at = now
        db.add(row)
        db.commit()


@dataclass
class ServiceLock:
    """The one workstation service of an identity, held for as long as it runs."""

    path: Path
    fd: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def hold_service_lock(identity: WorkstationIdentity) -> ServiceLock:
    """Refuse a second live workstation service of this identity (``traction run`` and ``demo``
    may run beside it: each session has its own lease)."""
    path = identity.data_dir / "service.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise IdentityError(
            f"another workstation service (pid {holder}) is running as workstation "
            f"{identity.label!r} (identity {identity.id}, data directory {identity.data_dir}); "
            "stop it first, or give this one its own data_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return ServiceLock(path, fd)


def _now() -> str:
    return datetime.now(UTC).isoformat()
