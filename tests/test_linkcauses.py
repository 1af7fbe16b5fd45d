"""Why a link would not open, named for the operator: the device and the cause, once."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import serial

from devices.linkcauses import probe_serial_port, probe_tcp, serial_cause
from simulators.ptypair import PtyPair


@pytest.mark.parametrize(
    ("code", "cause"),
    [
        (errno.ENOENT, "no such device"),
        (errno.EACCES, "permission denied (add this user to the group owning the port"),
        (errno.EAGAIN, "in use by another program"),
        (errno.EIO, "device stopped answering (I/O error)"),
        (errno.ENOTTY, "not a serial port"),
    ],
)
def test_os_errors_become_the_device_and_a_cause(code: int, cause: str) -> None:
    error = serial.SerialException(code, "could not open port /dev/ttyX: [Errno ...] ...")
    assert serial_cause("/dev/ttyX", error).startswith(f"/dev/ttyX: {cause}")


def test_an_unlisted_error_keeps_the_os_words() -> None:
    assert serial_cause("/dev/ttyX", OSError(errno.EROFS, "Read-only file system")) == (
        "/dev/ttyX: Read-only file system"
    )


def test_probing_names_a_missing_device_a_plain_file_and_a_busy_port(
    tmp_path: Path, pty_pair: PtyPair
) -> None:
    assert probe_serial_port(f"{tmp_path}/ttyNONE").endswith(
        "no such device (check the cable or adapter is plugged in and the path)"
    )
    plain = tmp_path / "notes.txt"
    plain.write_text("x")
    assert (
        probe_serial_port(str(plain))
        == f"{plain}: not a serial port (give the path of a serial device)"
    )
    with serial.Serial(pty_pair.host_port, exclusive=True):
        assert "in use by another program" in probe_serial_port(pty_pair.host_port)


async def test_probing_a_closed_tcp_port_says_connection_refused() -> None:
    cause = await probe_tcp("127.0.0.1", 9, 1.0)
    assert cause.startswith("127.0.0.1:9: connection refused")
