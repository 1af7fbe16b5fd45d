"""Exit codes of the ``traction`` command, so scripts can tell outcomes apart."""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    FAILED = 1  # an unexpected failure (a bug: please report it with the log)
    USAGE = 2  # bad options, settings, profile or URL: fix the input
    REFUSED = 3  # safety validation refused to start; nothing touched the patient
    TRIPPED = 4  # the session ran and was ended by a safety trip or the stop switch
    TABLE = 5  # the table could not be reached or answered with an error
    INTEGRITY = 6  # a sealed session no longer matches its seal
    STOPPED = 7  # the operator stopped the session before it completed
    NOTHING = 8  # nothing to act on: e.g. no sealed session to verify
    HELD = 9  # an export held something back from billing (blocking findings or simulated)
