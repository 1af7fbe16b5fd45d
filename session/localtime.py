"""Times as a person reads them: in the clinic's zone, with the zone named.

Storage, JSON, FHIR and X12 keep UTC (or an explicit offset); every list, show and document a person
reads goes through here, so a 09:00 session never reads as 15:00 and the zone is never a guess.
"""

from __future__ import annotations

from datetime import datetime, tzinfo


def local_time(moment: datetime, zone: tzinfo, seconds: bool = False) -> str:
    """``moment`` in ``zone``, e.g. ``2026-11-28 09:05 CST`` (the zone's abbreviation; a zone
    without one shows its offset, e.g. ``+0530``)."""
    local = moment.astimezone(zone)
    name = local.tzname() or ""
    if not name or name[0] in "+-":  # zones like Asia/Kolkata name themselves by their offset
        name = local.strftime("%z")
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{local.strftime(f'%Y-%m-%d {clock}')} {name}"
