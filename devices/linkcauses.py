"""Why a link to a table would not open, in words an operator can act on.

pymodbus' clients report a failed connect as a bare ``False`` (the cause goes to its log), and the
OS's own messages repeat themselves ("could not open port /dev/x: [Errno 2] No such file or
directory: '/dev/x'"). These functions name the device and the cause once: a missing serial device
is "no such device", not "connection refused".
"""

from __future__ import annotations

import asyncio
import errno
import socket

import serial

from devices.clock import format_seconds

# errno -> (cause, what to do next), for a serial port that will not open.
_SERIAL_CAUSES: dict[int, tuple[str, str]] = {
    errno.ENOENT: ("no such device", "check the cable or adapter is plugged in and the path"),
    errno.ENODEV: ("device not present", "check the cable or adapter is plugged in"),
    errno.ENXIO: ("device not present", "check the cable or adapter is plugged in"),
    errno.EIO: ("device stopped answering (I/O error)", "check the cable or adapter"),
    errno.EACCES: ("permission denied", "add this user to the group owning the port (dialout)"),
    errno.EPERM: ("permission denied", "add this user to the group owning the port (dialout)"),
    errno.EBUSY: ("in use by another program", "close the other program using the port"),
    errno.EAGAIN: ("in use by another program", "close the other program using the port"),
    errno.ENOTTY: ("not a serial port", "give the path of a serial device"),
    errno.EINVAL: ("not a serial port", "give the path of a serial device"),
    errno.EISDIR: ("not a serial port", "give the path of a serial device"),
}


def serial_cause(path: str, error: BaseException) -> str:
    """``"<path>: <cause> (<what to do>)"`` for the exception opening serial port ``path`` raised."""
    code = _errno_of(error)
    if code in _SERIAL_CAUSES:
        cause, remedy = _SERIAL_CAUSES[code]
        return f"{path}: {cause} ({remedy})"
    detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"{path}: {detail}"


def _errno_of(error: BaseException) -> int | None:
    """The OS error number behind ``error``; pyserial sometimes keeps it only in the exception it
    was raised from (a termios error when the path is not a terminal)."""
    for candidate in (error, error.__context__):
        code = getattr(candidate, "errno", None)
        if isinstance(code, int):
            return code
        args = getattr(candidate, "args", ())
        if args and isinstance(args[0], int):
            return args[0]
    return None


def probe_serial_port(path: str) -> str:
    """Open ``path`` once, exclusively as pymodbus does, and say why that fails (blocking)."""
    try:
        with serial.Serial(path, exclusive=True):
            pass
    except (serial.SerialException, OSError, ValueError) as error:
        return serial_cause(path, error)
    return f"{path}: opened on a second attempt; the port or adapter may be unreliable"


async def probe_tcp(host: str, port: int, wait_s: float) -> str:
    """Connect to ``host:port`` once and say why that fails."""
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), wait_s)
    except ConnectionRefusedError:
        return f"{where}: connection refused (nothing listens there; is the table on?)"
    except TimeoutError:
        return f"{where}: no answer within {format_seconds(wait_s)} (check the address and network)"
    except socket.gaierror:
        return f"{where}: unknown host name"
    except OSError as error:
        return f"{where}: {error.strerror or error}"
    writer.close()
    return f"{where}: connected on a second attempt; the link may be unreliable"
