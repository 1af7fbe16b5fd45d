"""The seal on SQLite and PostgreSQL: change each sealed field in turn with plain SQL, as someone
with database access would, and ``verify`` must name the part that changed; lawful amendments
after sealing keep the seal valid, and anything they do not explain is reported."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest_db import make_started
from sqlalchemy.engine import Engine

from devices.records import Event, EventKind, Finished, Outcome, Phase, Sample
from session.facts import facts_for
from session.facts import load as load_facts
from session.seal import (
    DOCUMENTATION_FIELDS,
    PARTS,
    RECORDED_FIELDS,
    _canonical,
    _sample_lines,
    compute_parts,
    digest,
    digest_of,
    seal,
    verify,
)
from session.store import NumberedEvent, SessionContext, Store

MOMENT = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)


def recorded(
    store: Store,
    context: SessionContext,
    *,
    amend_first: bool = False,
    ends_after: timedelta = timedelta(seconds=1),
) -> str:
    """A finished session: 20 samples over two phases and cycles, three events; not sealed. It
    ends ``ends_after`` its start, which is now."""
    started = make_started(str(uuid.uuid4()))
    run = started.run_id
    store.create_session(started, context)
    samples = [
        Sample(
            run, i, i * 0.02, 300.0, 298.5 + i / 7, Phase.HOLD if i < 10 else Phase.REST, i // 10
        )
        for i in range(1, 21)
    ]
    events = [
        NumberedEvent(1, Event(run, 0.0, EventKind.PHASE, "phase hold", {"phase": "hold"})),
        NumberedEvent(2, Event(run, 0.2, EventKind.PHASE, "phase rest", {"phase": "rest"})),
        NumberedEvent(3, Event(run, 0.4, EventKind.RELEASED, "table released", {"n": 1})),
    ]
    store.add_batch(run, samples, events)
    store.finish(Finished(run, 0.4, started.wall + ends_after, Outcome.TRIPPED, "x", 20))
    if amend_first:
        store.amend(run, "patient_response", "tolerated well", "Dana", "charted late")
    return run


def execute(engine: Engine, sql: str, **params: Any) -> None:
    with engine.begin() as conn:
        changed = conn.execute(sa.text(sql), params).rowcount
    assert changed == 1, f"{sql!r} changed {changed} rows"


# (what to change, SQL, the difference verify must report)
SAMPLE_CHANGES = [
    ("seq", "UPDATE samples SET seq = 99 WHERE session_id = :s AND seq = 7"),
    ("t", "UPDATE samples SET t = t + 0.001 WHERE session_id = :s AND seq = 7"),
    ("target", "UPDATE samples SET target_n = 299.0 WHERE session_id = :s AND seq = 7"),
    ("measured", "UPDATE samples SET measured_n = 150.0 WHERE session_id = :s AND seq = 7"),
    ("phase", "UPDATE samples SET phase = 'rest' WHERE session_id = :s AND seq = 7"),
    ("cycle", "UPDATE samples SET cycle = 5 WHERE session_id = :s AND seq = 7"),
    ("deleted", "DELETE FROM samples WHERE session_id = :s AND seq = 20"),
]
EVENT_CHANGES = [
    ("seq", "UPDATE events SET seq = 9 WHERE session_id = :s AND seq = 2"),
    ("t", "UPDATE events SET t = 0.25 WHERE session_id = :s AND seq = 2"),
    ("kind", "UPDATE events SET kind = 'warning' WHERE session_id = :s AND seq = 2"),
    ("reason", "UPDATE events SET reason = 'phase hold' WHERE session_id = :s AND seq = 2"),
    ("data", 'UPDATE events SET data = \'{"phase": "hold"}\' WHERE session_id = :s AND seq = 2'),
    ("deleted", "DELETE FROM events WHERE session_id = :s AND seq = 3"),
]
SESSION_CHANGES = [
    ("settings", "UPDATE sessions SET settings = '{}' WHERE id = :s", "settings"),
    ("outcome", "UPDATE sessions SET outcome = 'completed' WHERE id = :s", "outcome"),
    ("reason", "UPDATE sessions SET outcome_reason = 'fine' WHERE id = :s", "outcome"),
    ("patient", "UPDATE sessions SET patient_id = :other WHERE id = :s", "record"),
    ("workstation", "UPDATE sessions SET workstation = 'ws-9' WHERE id = :s", "record"),
    ("serial", "UPDATE sessions SET device_serial = 'SN-1' WHERE id = :s", "record"),
    ("rating", "UPDATE sessions SET device_rated_max_force_n = 1.5 WHERE id = :s", "record"),
    ("start_t", "UPDATE sessions SET start_t = 7.0 WHERE id = :s", "record"),
    ("started", "UPDATE sessions SET started_at = :moment WHERE id = :s", "record"),
    ("ended", "UPDATE sessions SET ended_at = :moment WHERE id = :s", "record"),
]


@pytest.mark.parametrize(("what", "sql"), SAMPLE_CHANGES, ids=[c[0] for c in SAMPLE_CHANGES])
def test_changing_any_sample_field_is_reported(
    engine: Engine, store: Store, context: SessionContext, what: str, sql: str
) -> None:
    run = recorded(store, context)
    sealed = seal(store, run)
    assert verify(store, run).ok
    execute(engine, sql, s=run)
    report = verify(store, run)
    assert not report.ok and report.expected == sealed and report.actual != sealed
    assert "samples changed since sealing" in report.differences
    if what == "deleted":
        assert "sample_count: 20 at sealing, 19 now" in report.differences


@pytest.mark.parametrize(("what", "sql"), EVENT_CHANGES, ids=[c[0] for c in EVENT_CHANGES])
def test_changing_any_event_field_is_reported(
    engine: Engine, store: Store, context: SessionContext, what: str, sql: str
) -> None:
    run = recorded(store, context)
    seal(store, run)
    execute(engine, sql, s=run)
    report = verify(store, run)
    assert not report.ok
    assert "events changed since sealing" in report.differences
    if what == "deleted":
        assert "event_count: 3 at sealing, 2 now" in report.differences


@pytest.mark.parametrize(
    ("what", "sql", "part"), SESSION_CHANGES, ids=[c[0] for c in SESSION_CHANGES]
)
def test_changing_the_settings_outcome_or_recorded_facts_is_reported(
    engine: Engine, store: Store, context: SessionContext, what: str, sql: str, part: str
) -> None:
    run = recorded(store, context)
    other = store.add_patient("MRN-0002", 70.0).id
    seal(store, run)
    moment = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    execute(engine, sql, s=run, other=other, moment=moment)
    report = verify(store, run)
    assert not report.ok
    assert report.differences == [f"{part} changed since sealing"]


def test_every_sealed_part_is_in_the_digest_and_each_is_checked() -> None:
    assert set(PARTS) == {"settings", "record", "samples", "events", "outcome", "amendments"}
    assert {"patient_id", "device_serial", "started_at", "ended_at"} <= set(RECORDED_FIELDS)
    assert set(DOCUMENTATION_FIELDS) >= {"diagnosis_codes", "signed_by_id", "signed_at"}


def test_amendments_after_sealing_keep_the_seal_valid(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    sealed = seal(store, run)
    store.amend(run, "patient_response", "reported less pain", "Dana", "charted after")
    store.amend(run, "diagnosis_codes", ["M51.16", "M54.16"], "Dana", "added")
    store.amend(run, "signed_by_id", context.treating_clinician_id, "Dana", "signed")
    store.amend(run, "patient_response", "reported much less pain", "Dana", "corrected")
    report = verify(store, run)
    assert report.ok and report.differences == [] and report.actual == sealed


def test_an_amendment_made_before_sealing_is_sealed(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context, amend_first=True)
    seal(store, run)
    assert verify(store, run).ok
    execute(engine, "UPDATE amendments SET why = 'nothing' WHERE session_id = :s", s=run)
    assert verify(store, run).differences == ["amendments changed since sealing"]
    execute(engine, "DELETE FROM amendments WHERE session_id = :s", s=run)
    differences = verify(store, run).differences
    assert "amendments changed since sealing" in differences
    assert "amendment_count: 1 at sealing, 0 now" in differences


@pytest.mark.parametrize(
    ("sql", "difference"),
    [
        (
            "UPDATE sessions SET medical_necessity = 'invented' WHERE id = :s",
            "medical_necessity changed without an amendment since sealing",
        ),
        (
            "UPDATE sessions SET signed_by_id = :clinician WHERE id = :s",
            "signed_by_id changed without an amendment since sealing",
        ),
        (
            "UPDATE sessions SET signed_at = :moment WHERE id = :s",
            "signed_at changed without an amendment since sealing",
        ),
        (
            "UPDATE amendments SET new_value = '\"made up\"' WHERE session_id = :s",
            "patient_response changed without an amendment since sealing",
        ),
        (
            "UPDATE amendments SET old_value = '\"made up\"' WHERE session_id = :s",
            "amendment {id} to patient_response does not follow from the value before it",
        ),
    ],
    ids=["field-edited", "signed-by-sql", "signing-time", "amendment-value", "amendment-chain"],
)
def test_documentation_no_amendment_explains_is_reported(
    engine: Engine, store: Store, context: SessionContext, sql: str, difference: str
) -> None:
    run = recorded(store, context)
    seal(store, run)
    amendment = store.amend(run, "patient_response", "tolerated", "Dana", "charted after")
    moment = datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    execute(engine, sql, s=run, clinician=context.treating_clinician_id, moment=moment)
    report = verify(store, run)
    assert not report.ok
    assert report.differences == [difference.format(id=amendment.id)]


def test_a_deleted_later_amendment_is_reported(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    store.amend(run, "patient_response", "tolerated", "Dana", "charted")
    store.amend(run, "patient_response", "tolerated well", "Dana", "corrected")
    execute(engine, "DELETE FROM amendments WHERE session_id = :s AND why = 'charted'", s=run)
    differences = verify(store, run).differences
    assert len(differences) == 1 and "does not follow from the value before it" in differences[0]


def test_a_rewritten_seal_is_reported(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    execute(engine, "UPDATE sessions SET seal_digest = 'sha256:00' WHERE id = :s", s=run)
    report = verify(store, run)
    assert not report.ok and report.expected == "sha256:00"
    assert report.differences == ["the stored seal does not match its own part digests"]


def test_a_version_1_seal_still_verifies_and_still_catches_a_change(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    """Sessions sealed before the record and amendments were covered keep verifying as sealed."""
    run = recorded(store, context)
    parts = compute_parts(store, run, version=1)
    assert "record" not in parts and "amendments" not in parts
    store.record_seal(run, digest_of(parts), parts)
    assert verify(store, run).ok
    execute(engine, "UPDATE samples SET cycle = 5 WHERE session_id = :s AND seq = 7", s=run)
    assert verify(store, run).differences == ["samples changed since sealing"]


def test_digest_is_what_seal_stores_and_an_unsealed_session_says_so(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    expected = digest(store, run)
    report = verify(store, run)
    assert report.ok is False and report.expected is None and report.actual == expected
    assert report.session_id == run
    assert report.differences == ["the session was never sealed"]
    assert seal(store, run) == expected == store.get_session(run).seal_digest


def test_parts_count_what_was_recorded(store: Store, context: SessionContext) -> None:
    run = recorded(store, context, amend_first=True)
    parts = compute_parts(store, run)
    assert (parts["sample_count"], parts["event_count"], parts["amendment_count"]) == (20, 3, 1)
    assert parts["version"] == 2 and parts["last_amendment_id"] >= 1
    assert parts["documentation"]["patient_response"] == "tolerated well"


def test_the_seal_is_a_labelled_sha256_digest(store: Store, context: SessionContext) -> None:
    value = seal(store, recorded(store, context))
    algorithm, _, hexdigest = value.partition(":")
    assert algorithm == "sha256" and len(hexdigest) == 64 and int(hexdigest, 16) >= 0


def test_a_seal_part_layout_this_code_does_not_know_is_reported_not_crashed_on(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    parts = store.get_session(run).seal_parts or {}
    forged = json.dumps({**parts, "version": 99})
    execute(engine, "UPDATE sessions SET seal_parts = :p WHERE id = :s", p=forged, s=run)
    report = verify(store, run)
    assert not report.ok
    assert report.differences == ["the stored seal does not match its own part digests"]


def test_a_changed_moment_of_a_sealed_amendment_is_reported(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context, amend_first=True)
    seal(store, run)
    execute(engine, "UPDATE amendments SET at = :m WHERE session_id = :s", m=MOMENT, s=run)
    assert verify(store, run).differences == ["amendments changed since sealing"]


def test_amendments_before_and_after_sealing_together_keep_the_seal_valid(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context, amend_first=True)
    seal(store, run)
    store.amend(run, "patient_response", "tolerated very well", "Dana", "corrected")
    store.amend(run, "signed_by_id", context.treating_clinician_id, "Dana", "signed")
    store.amend(run, "signed_by_id", None, "Dana", "signed the wrong note")
    report = verify(store, run)
    assert report.ok, report.differences


def test_an_amendment_to_a_field_that_is_not_documentation_is_reported_and_later_ones_checked(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    execute(
        engine,
        "INSERT INTO amendments (session_id, author, at, field_name, old_value, new_value, why)"
        " VALUES (:s, 'x', :m, 'outcome', '\"tripped\"', '\"completed\"', 'forged')",
        s=run,
        m=MOMENT,
    )
    store.amend(run, "patient_response", "tolerated", "Dana", "charted")
    execute(engine, "UPDATE sessions SET medical_necessity = 'invented' WHERE id = :s", s=run)
    differences = verify(store, run).differences
    assert len(differences) == 2
    assert differences[0].endswith("changes 'outcome', not a documentation field")
    assert differences[1] == "medical_necessity changed without an amendment since sealing"


def test_the_order_of_keys_in_a_stored_json_field_is_not_a_change(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    """A copy or restore may write a JSON object's keys in another order (PostgreSQL's jsonb
    sorts them); the content is the same, so the seal must still match."""
    run = recorded(store, context)
    settings = store.get_session(run).settings
    seal(store, run)
    reordered = json.dumps(dict(reversed(list(settings.items()))))
    execute(engine, "UPDATE sessions SET settings = :v WHERE id = :s", v=reordered, s=run)
    report = verify(store, run)
    assert report.ok is True and report.session_id == run and report.differences == []


def test_sealing_keeps_the_facts_of_that_seal(store: Store, context: SessionContext) -> None:
    run = recorded(store, context)
    value = seal(store, run)
    facts = load_facts(store, [run])[run]
    assert (facts.seal_digest, facts.seal_verified) == (value, True)
    assert (facts.sample_count, facts.event_count) == (20, 3)
    assert (facts.first_t, facts.last_t) == (0.02, 0.4)
    assert facts.tolerance_n == 30.0  # 10% of the profile's 300 N, read from the settings
    assert facts.peak_hold_n == 298.5 + 9 / 7  # the hold phase's samples (1 to 9) only


def test_the_facts_plot_spans_the_session_to_its_last_sample(
    store: Store, context: SessionContext
) -> None:
    """40 samples over 4 s fall in 40 buckets of the 600; a plot sized to 1 s would pile the
    last three seconds into its last bucket."""
    started = make_started(str(uuid.uuid4()))
    run = started.run_id
    store.create_session(started, context)
    samples = [Sample(run, i, i * 0.1, 300.0, 299.0, Phase.HOLD, 0) for i in range(1, 41)]
    store.add_batch(run, samples, [])
    store.finish(Finished(run, 4.0, started.wall + timedelta(seconds=4), Outcome.COMPLETED, "", 40))
    seal(store, run)
    plot = load_facts(store, [run])[run].plot
    assert len(plot) == 40
    assert [b[0] for b in plot] == [s.t for s in samples]


def test_verify_keeps_what_it_found_only_when_asked(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    execute(engine, "UPDATE samples SET measured_n = 1.0 WHERE session_id = :s AND seq = 3", s=run)
    assert not verify(store, run).ok
    assert load_facts(store, [run])[run].seal_verified is True  # a read-only check writes nothing
    assert not verify(store, run, keep=True).ok
    assert load_facts(store, [run])[run].seal_verified is False
    execute(
        engine,
        "UPDATE samples SET measured_n = :m WHERE session_id = :s AND seq = 3",
        m=298.5 + 3 / 7,
        s=run,
    )
    assert verify(store, run, keep=True).ok
    assert load_facts(store, [run])[run].seal_verified is True


def test_sample_lines_are_the_canonical_rows_even_when_a_phase_holds_brackets() -> None:
    """The fast path splits one encoded page at ``],[``; a phase holding that text must not be
    split, so such a page is encoded row by row and gives the same bytes as each row alone."""
    plain = [(1, 0.5, 300.0, 299.25, "hold", 0), (2, 0.52, 300.0, 299.5, "rest ä", 1)]
    odd = [(3, 0.54, 300.0, 299.75, "x],[y", 1), (4, 0.56, 300.0, 300.0, "hold", 1)]

    def canonical(page: list[tuple[Any, ...]]) -> str:
        return "".join(_canonical(list(row)).decode() + "\n" for row in page)

    known: set[str] = set()
    assert _sample_lines(plain, known) == canonical(plain)
    assert known == {"hold", "rest ä"}
    assert _sample_lines(odd, known) == canonical(odd)
    assert "x],[y" not in known
    assert _sample_lines(odd, known) == canonical(odd)
    assert _sample_lines([], known) == ""


def test_facts_of_a_finished_session_not_yet_sealed_claim_no_seal(
    store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    facts = facts_for(store, run)
    assert (facts.seal_digest, facts.seal_verified, facts.verified_at) == (None, False, None)
    assert (facts.sample_count, facts.event_count) == (20, 3)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_the_sealed_format_is_fixed_so_old_seals_keep_verifying(
    store: Store, context: SessionContext
) -> None:
    """Each part digest spelled out independently of the code: compact JSON with sorted keys and
    unescaped text, one line per sample and per event, datetimes in ISO form. Any change to the
    format would make every seal already stored fail to verify."""
    run = recorded(store, context, amend_first=True)
    row = store.get_session(run)
    parts = compute_parts(store, run)
    samples = "".join(
        _json([s.seq, s.t, s.target_n, s.measured_n, str(s.phase), s.cycle]) + "\n"
        for s in store.iter_samples(run)
    )
    events = "".join(
        _json([e.seq, e.t, str(e.kind), e.reason, e.data]) + "\n" for e in store.iter_events(run)
    )
    [a] = store.amendments(run)
    amendment = [a.id, a.author, a.at.isoformat(), a.field_name, a.old_value, a.new_value, a.why]
    recorded_facts = {
        name: (v.isoformat() if isinstance(v, datetime) else v)
        for name in RECORDED_FIELDS
        for v in [getattr(row, name)]
    }
    assert parts["settings"] == _sha(_json(row.settings))
    assert parts["samples"] == _sha(samples)
    assert parts["events"] == _sha(events)
    assert parts["outcome"] == _sha(_json([run, "tripped", "x"]))
    assert parts["record"] == _sha(_json(recorded_facts))
    assert parts["amendments"] == _sha(_json([amendment]))
    assert (parts["amendment_count"], parts["last_amendment_id"]) == (1, a.id)
    assert digest_of(parts) == "sha256:" + _sha(_json(parts))
    assert _canonical({"b": [1.5, "Ruhe ä"], "a": MOMENT}) == (
        '{"a":"2020-01-02T03:04:05+00:00","b":[1.5,"Ruhe ä"]}'.encode()
    )


def test_a_session_longer_than_one_page_of_samples_is_counted_and_checked_whole(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    started = make_started(str(uuid.uuid4()))
    run = started.run_id
    store.create_session(started, context)
    n = 5_003  # the store reads samples in pages of 5 000
    store.add_batch(run, [Sample(run, i, i * 0.02, 300.0, 299.0, Phase.HOLD, 0) for i in range(n)])
    store.finish(Finished(run, n * 0.02, started.wall, Outcome.COMPLETED, "done", n))
    seal(store, run)
    assert (store.get_session(run).seal_parts or {})["sample_count"] == n
    execute(
        engine, "UPDATE samples SET measured_n = 1.0 WHERE session_id = :s AND seq = 5002", s=run
    )
    assert verify(store, run).differences == ["samples changed since sealing"]


def test_a_seal_stored_without_its_documentation_is_reported_not_crashed_on(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    seal(store, run)
    parts = dict(store.get_session(run).seal_parts or {})
    del parts["documentation"]
    execute(engine, "UPDATE sessions SET seal_parts = :p WHERE id = :s", p=json.dumps(parts), s=run)
    report = verify(store, run)
    assert not report.ok
    assert report.differences == ["the stored seal does not match its own part digests"]


def test_a_note_signed_after_sealing_keeps_the_seal_valid_whatever_the_clocks_say(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    """This session ends ten minutes in the future (a workstation clock ahead of the server's):
    the store dates the signature at the session's end, never before it, and verify replays it so.
    (Ten minutes, not one second: a loaded machine can take a second to seal.)"""
    run = recorded(store, context, ends_after=timedelta(minutes=10))
    seal(store, run)
    store.amend(run, "signed_by_id", context.treating_clinician_id, "Dana", "signed")
    row = store.get_session(run)
    [signing] = store.amendments(run)
    assert row.ended_at is not None and row.signed_at == row.ended_at > signing.at
    report = verify(store, run)
    assert report.ok and report.differences == []
    execute(engine, "UPDATE sessions SET signed_at = :m WHERE id = :s", m=MOMENT, s=run)
    assert verify(store, run).differences == [
        "signed_at changed without an amendment since sealing"
    ]


def test_a_note_signed_after_sealing_is_dated_when_it_was_signed(
    engine: Engine, store: Store, context: SessionContext
) -> None:
    run = recorded(store, context)
    ended = datetime.now(UTC) - timedelta(hours=1)
    execute(engine, "UPDATE sessions SET ended_at = :e WHERE id = :s", e=ended, s=run)
    seal(store, run)
    store.amend(run, "signed_by_id", context.treating_clinician_id, "Dana", "signed")
    [signing] = store.amendments(run)
    assert store.get_session(run).signed_at == signing.at
    assert verify(store, run).ok
    execute(engine, "UPDATE sessions SET signed_at = ended_at WHERE id = :s", s=run)
    assert verify(store, run).differences == [
        "signed_at changed without an amendment since sealing"
    ]


def test_a_session_without_a_sample_is_sealed_with_its_facts(
    store: Store, context: SessionContext
) -> None:
    started = make_started(str(uuid.uuid4()))
    run = started.run_id
    store.create_session(started, context)
    store.finish(Finished(run, 0.0, started.wall, Outcome.STOPPED, "stopped before start", 0))
    value = seal(store, run)
    facts = load_facts(store, [run])[run]
    assert (facts.seal_digest, facts.sample_count, facts.plot) == (value, 0, [])
    assert verify(store, run).ok


def test_the_facts_list_each_interruption_with_its_moment_and_reason(
    store: Store, context: SessionContext
) -> None:
    started = make_started(str(uuid.uuid4()), t=10.0)
    run = started.run_id
    store.create_session(started, context)
    store.add_batch(
        run,
        [Sample(run, 0, 10.1, 300.0, 299.0, Phase.HOLD, 0)],
        [
            NumberedEvent(0, Event(run, 10.2, EventKind.PHASE, "phase hold", {})),
            NumberedEvent(1, Event(run, 10.25, EventKind.TRIP, "over target", {"n": 1})),
        ],
    )
    store.finish(Finished(run, 10.3, started.wall, Outcome.TRIPPED, "over target", 1))
    seal(store, run)
    facts = load_facts(store, [run])[run]
    assert facts.occurrences == [{"at_s": 0.25, "kind": "trip", "reason": "over target"}]
    assert facts.event_count == 2
