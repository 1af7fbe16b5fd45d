"""Recorded moments are wall-clock and ordered (started <= ended <= signed, sealed after ended);
a scaled clock's session time is kept apart, in the samples and the session's time scale."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest_db import make_started

from devices.clock import ScaledClock
from devices.records import Finished, Outcome
from session.seal import seal
from session.store import SessionContext, Store, StoreError


def test_a_scaled_clock_maps_session_time_to_real_wall_time() -> None:
    clock = ScaledClock(20.0)
    start = clock.wall(0.0)
    assert clock.wall(60.0) - start == timedelta(seconds=3)  # a session minute is 3 real seconds
    time.sleep(0.15)
    wall = clock.wall(clock.now())
    now = datetime.now(UTC)  # read after: a pause between the two cannot fail the test
    assert wall <= now + timedelta(milliseconds=100)  # never in the future


def test_signing_comes_after_the_end_and_sealing_after_it(
    store: Store, context: SessionContext
) -> None:
    started = make_started()
    row = store.create_session(started, context)
    signer = context.supervising_clinician_id
    with pytest.raises(StoreError, match="has not ended"):
        store.amend(row.id, "signed_by_id", signer, "clinician 2", "too early")
    store.finish(Finished(row.id, 30.0, datetime.now(UTC), Outcome.COMPLETED, "ok", 0))
    seal(store, row.id)
    store.amend(row.id, "signed_by_id", signer, "clinician 2", "signature")
    done = store.get_session(row.id)
    assert done.ended_at is not None and done.sealed_at is not None and done.signed_at
    assert done.started_at <= done.ended_at <= done.sealed_at
    assert done.ended_at <= done.signed_at


def test_an_interrupted_scaled_session_ends_at_real_time_not_session_time(
    store: Store, context: SessionContext
) -> None:
    from devices.records import Phase, Sample

    started = make_started()
    scaled = type(started)(**{**started.__dict__, "time_scale": 20.0})
    store.create_session(scaled, context)
    store.add_batch(scaled.run_id, [Sample(scaled.run_id, 0, 600.0, 0.0, 0.0, Phase.REST)])
    row = store.interrupt(scaled.run_id)  # its owner gone (session.recovery proves that)
    assert row is not None
    assert row.simulated and row.time_scale == 20.0
    assert row.ended_at is not None
    assert row.ended_at - row.started_at == timedelta(seconds=30)  # 600 s of session at x20
