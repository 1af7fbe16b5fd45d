"""Exports for billing offices, the CLI and the HTTP service: one place that turns stored sessions
into files, so every way in produces the same documents and the same readiness findings.

Two steps. :func:`claim_run` is pure: documentation, billing lines and every finding for the
sessions asked for. :func:`export_to_directory` then *bills*: each ready line is offered to the
claims ledger (:mod:`session.ledger`), which appends it once per encounter or answers that it was
already sent; held lines (a blocking finding on every session of the encounter) go to a file of
their own with their findings; simulated sessions are documented and never billed. Claim files
(``billing-lines.csv``, ``claims.837p.txt``) hold only lines sent by this run.
"""

from __future__ import annotations

import enum
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from devices.errors import ConfigError
from devices.units import ForceUnit
from session.billing import (
    BillingLine,
    Finding,
    Payer,
    Severity,
    Spend,
    billing_lines,
    blocked_sessions,
    check_readiness,
    default_ncci_pairs,
    default_payers,
)
from session.documentation import (
    BillingStatus,
    Documentation,
    DocumentationError,
    FindingOut,
    build_documentation,
)
from session.export.csv_lines import render_csv
from session.export.fhir_bundle import render_fhir
from session.export.json_doc import render_json
from session.export.x12_837p import Claim, Provider, clinic_identity, render_interchange
from session.facts import facts_for
from session.ledger import Claimed, ClaimsLedger, ClaimStatus, as_billing_line
from session.models import ClaimLine
from session.store import Store

DEFAULT_PAYER = "medicare"
MAX_SESSIONS_PER_EXPORT = 5000
"""An export names at most this many sessions; a billing office pulls larger spans by cursor."""


class ExportFormat(enum.StrEnum):
    JSON = "json"
    CSV = "csv"
    PDF = "pdf"
    FHIR = "fhir"
    X12 = "x12"

    @property
    def suffix(self) -> str:
        return {"fhir": ".fhir.json", "x12": ".837p.txt"}.get(self.value, f".{self.value}")

    @property
    def shows_seal(self) -> bool:
        """The document states whether the seal matches, so its export verifies the seal."""
        return self in (ExportFormat.JSON, ExportFormat.PDF)

    @property
    def media_type(self) -> str:
        return {
            "json": "application/json",
            "csv": "text/csv",
            "pdf": "application/pdf",
            "fhir": "application/fhir+json",
            "x12": "text/plain",
        }[self.value]


@dataclass(frozen=True)
class ExportOptions:
    """The clinic's choices that shape every export: display unit, place of service, the time
    zone that decides dates of service, and for billing the payer override and each patient's
    therapy spend this year from outside this ledger (KX)."""

    unit: ForceUnit = ForceUnit.LBF
    place_of_service: str = "11"
    time_zone: tzinfo = UTC
    payer_key: str | None = None
    year_to_date_spend: Decimal = Decimal(0)
    clinic_file: Path | None = None  # the clinic's 837P identifiers (default configs/clinic.toml)


@dataclass
class ClaimRun:
    """Documentation, billing lines and readiness findings for a set of sessions."""

    docs: list[Documentation]
    lines: list[BillingLine]
    findings: list[Finding]
    payers: dict[str, Payer] = field(default_factory=dict)
    payer_of: dict[str, str] = field(default_factory=dict)  # session id -> payer key

    @property
    def blocked(self) -> set[str]:
        return blocked_sessions(self.findings)

    def ready(self, session_id: str) -> bool:
        return session_id not in self.blocked

    def billed_on(self, session_id: str) -> list[BillingLine]:
        """The line a session carries (empty when another session of its day carries it, or it
        was simulated)."""
        return [line for line in self.lines if line.session_ids[0] == session_id]

    def line_of(self, session_id: str) -> BillingLine | None:
        """The line that covers a session, whichever session carries it."""
        return next((line for line in self.lines if session_id in line.session_ids), None)

    def line_ready(self, line: BillingLine) -> bool:
        return line.session_ids[0] not in self.blocked

    def findings_for(self, session_id: str) -> list[Finding]:
        return [f for f in self.findings if f.session_id == session_id]


def claim_run(
    store: Store,
    session_ids: Sequence[str],
    options: ExportOptions = ExportOptions(),
    payers: dict[str, Payer] | None = None,
    spend: Spend | None = None,
    *,
    verify_seals: bool = True,
) -> ClaimRun:
    """Document ``session_ids`` and compute their billing lines and findings, payer by payer
    (each session's patient's payer unless ``payer_key`` overrides it). Nothing is written.

    Every figure comes from the sessions' facts stored at sealing (:mod:`session.facts`); no
    sample is read except, with ``verify_seals``, once per session to recompute its seal (what
    JSON and PDF documents state). Without it a seal counts as what its last verification found,
    so billing costs the same however long the sessions were.

    Only the sessions asked for take part: another session of the same patient and day is billed
    once by the ledger, never by pulling it into this run. ``spend`` (default: the options'
    amount for every patient) gives each patient's prior spending per year for KX.
    """
    payers = payers or default_payers()
    payer_key = options.payer_key
    if payer_key is not None and payer_key not in payers:
        raise ConfigError(
            "payer", f"unknown payer {payer_key!r}; known: {', '.join(sorted(payers))}"
        )
    asked = list(dict.fromkeys(session_ids))
    if len(asked) > MAX_SESSIONS_PER_EXPORT:
        raise ConfigError(
            "sessions",
            f"{len(asked)} sessions in one export; at most {MAX_SESSIONS_PER_EXPORT}: narrow the "
            "dates or pull what is new with --new",
        )
    docs = [
        build_documentation(
            store,
            sid,
            options.unit,
            options.place_of_service,
            options.time_zone,
            verify=verify_seals,
        )
        for sid in asked
    ]
    by_payer: dict[str, list[Documentation]] = {}
    payer_of: dict[str, str] = {}
    for doc in docs:
        key = payer_key or doc.payer or DEFAULT_PAYER
        if key not in payers:
            raise ConfigError(
                f"session {doc.session_id}",
                f"patient's payer {key!r} is not in configs/payers.toml; add it or pass a payer",
            )
        by_payer.setdefault(key, []).append(doc)
        payer_of[doc.session_id] = key
    lines: list[BillingLine] = []
    findings: list[Finding] = []
    pairs = default_ncci_pairs()
    prior = options.year_to_date_spend if spend is None else spend
    for key, group in by_payer.items():
        group_findings = check_readiness(group, payers[key], prior, pairs)
        findings += group_findings
        lines += billing_lines(
            group, payers[key], prior, pairs, blocked=blocked_sessions(group_findings)
        )
    return ClaimRun(docs, lines, findings, payers, payer_of)


# ------------------------------------------------------------------------------------------------
# Billing: through the ledger.


class NothingToBill(DocumentationError):
    """A claim file asked for a session that no sent line bills; the message says why."""


class LineStatus(enum.StrEnum):
    SENT = "sent"
    ALREADY_SENT = "already_sent"
    HELD = "held"


@dataclass(frozen=True)
class LineResult:
    """What an export did with one billing line."""

    line: BillingLine
    status: LineStatus
    claim_line: ClaimLine | None  # the ledger line: new (sent) or the original (already sent)
    findings: tuple[Finding, ...]  # every finding of the line's sessions
    note: str


@dataclass
class ExportSummary:
    """Everything an export did; ``run_id`` is its record in the ledger."""

    run_id: int | None
    files: list[Path]
    docs: list[Documentation]
    results: list[LineResult]
    findings: list[Finding]
    notes: dict[str, str] = field(default_factory=dict)  # session -> why no claim file for it

    def _with(self, status: LineStatus) -> list[LineResult]:
        return [r for r in self.results if r.status is status]

    @property
    def sent(self) -> list[LineResult]:
        return self._with(LineStatus.SENT)

    @property
    def already_sent(self) -> list[LineResult]:
        return self._with(LineStatus.ALREADY_SENT)

    @property
    def held(self) -> list[LineResult]:
        return self._with(LineStatus.HELD)

    @property
    def lines(self) -> list[BillingLine]:
        """The lines this export sent."""
        return [r.line for r in self.sent]

    @property
    def simulated(self) -> list[str]:
        return [d.session_id for d in self.docs if d.simulated]

    @property
    def blocked(self) -> dict[str, list[Finding]]:
        out: dict[str, list[Finding]] = {}
        for f in self.findings:
            if f.severity is Severity.BLOCKING:
                out.setdefault(f.session_id, [])
        for f in self.findings:
            if f.session_id in out:
                out[f.session_id].append(f)
        return out

    @property
    def ready(self) -> list[str]:
        blocked = self.blocked
        return [d.session_id for d in self.docs if d.session_id not in blocked]

    @property
    def anything_held(self) -> bool:
        """A session was held back or never billable (blocked, simulated)."""
        return bool(self.blocked)


def _status(doc: Documentation, run: ClaimRun, results: dict[str, LineResult]) -> BillingStatus:
    findings = tuple(
        FindingOut(code=f.code, severity=f.severity.value, message=f.message)
        for f in run.findings_for(doc.session_id)
    )
    result = results.get(doc.session_id)
    if doc.simulated:
        return BillingStatus(
            status="simulated", note="simulated table: never billed", findings=findings
        )
    if result is None:
        return BillingStatus(status="held", note="no billable line", findings=findings)
    line_id = result.claim_line.id if result.claim_line else None
    if result.line.session_ids[0] != doc.session_id and result.status is not LineStatus.HELD:
        return BillingStatus(
            status="documented_only",
            claim_line_id=line_id,
            note=f"one unit per day: billed on the line of session {result.line.session_ids[0]}",
            findings=findings,
        )
    if not run.ready(doc.session_id):
        return BillingStatus(status="held", note=result.note, findings=findings)
    return BillingStatus(
        status=result.status.value, claim_line_id=line_id, note=result.note, findings=findings
    )


def bill(
    store: Store,
    session_ids: Sequence[str],
    options: ExportOptions,
    by: str,
    kind: str = "export",
    *,
    verify_seals: bool = True,
) -> tuple[ClaimRun, int, list[LineResult]]:
    """Compute the run, then offer each ready line to the ledger (recorded as run ``by``).
    Each patient's KX spend is the options' amount plus what the ledger has billed them this
    year. ``verify_seals`` as for :func:`claim_run`."""
    ledger = ClaimsLedger(store.engine)
    base = options.year_to_date_spend

    def spend(patient_ref: str, year: int) -> Decimal:
        return base + ledger.sent_spend(patient_ref, year)

    run = claim_run(store, session_ids, options, spend=spend, verify_seals=verify_seals)
    run_id = ledger.begin_run(by, kind, [d.session_id for d in run.docs])
    results: list[LineResult] = []
    for line in run.lines:
        findings = tuple(f for f in run.findings if f.session_id in line.session_ids)
        if not run.line_ready(line):
            blocking = [f.code for f in findings if f.severity is Severity.BLOCKING]
            results.append(
                LineResult(line, LineStatus.HELD, None, findings, f"held: {', '.join(blocking)}")
            )
            continue
        claimed: Claimed = ledger.claim(run_id, line, run.payer_of[line.session_ids[0]])
        status = LineStatus.SENT if claimed.status is ClaimStatus.SENT else LineStatus.ALREADY_SENT
        results.append(LineResult(line, status, claimed.line, findings, claimed.explain()))
    return run, run_id, results


def export_to_directory(
    store: Store,
    session_ids: Sequence[str],
    formats: Iterable[ExportFormat],
    out_dir: Path,
    options: ExportOptions = ExportOptions(),
    progress: Callable[[str], None] | None = None,
    by: str = "traction",
) -> ExportSummary:
    """Bill ``session_ids`` through the ledger and write their files.

    Per session ``<session>/<session><suffix>`` (JSON, PDF, FHIR documents always; CSV and 837P
    only for a session whose line this run sent). For the run: ``billing-lines.csv`` and
    ``claims.837p.txt`` with the lines sent now (never a held, simulated or already-sent line),
    and ``held-lines.csv`` with each held line and its findings. A file with nothing to hold is
    not written; ``notes`` says why for each session."""
    formats = list(formats)
    verify = any(fmt.shows_seal for fmt in formats)
    run, run_id, results = bill(store, session_ids, options, by, verify_seals=verify)
    ledger = ClaimsLedger(store.engine)
    by_session: dict[str, LineResult] = {}
    for each in results:
        for sid in each.line.session_ids:
            by_session[sid] = each
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    notes: dict[str, str] = {}
    docs: list[Documentation] = []
    for plain in run.docs:
        doc = plain.model_copy(update={"billing": _status(plain, run, by_session)})
        docs.append(doc)
        result = by_session.get(doc.session_id)
        sent_here = (
            result is not None
            and result.status is LineStatus.SENT
            and result.line.session_ids[0] == doc.session_id
        )
        if not sent_here:
            notes[doc.session_id] = _why_no_claim(doc)
        folder = out_dir / doc.session_id
        folder.mkdir(exist_ok=True)
        for fmt in formats:
            if fmt in (ExportFormat.CSV, ExportFormat.X12) and not sent_here:
                continue
            path = folder / f"{doc.session_id}{fmt.suffix}"
            rows = [result.claim_line] if sent_here and result and result.claim_line else []
            path.write_bytes(render(store, doc, fmt, rows, options))
            files.append(path)
        if progress is not None:
            progress(doc.session_id)
    sent_rows = [r.claim_line for r in results if r.status is LineStatus.SENT and r.claim_line]
    if sent_rows and ExportFormat.CSV in formats:
        files.append(_write(out_dir / "billing-lines.csv", render_ledger_csv(sent_rows)))
    if sent_rows and ExportFormat.X12 in formats:
        x12 = render_claims_x12(store, sent_rows, options, run_id)
        files.append(_write(out_dir / "claims.837p.txt", x12))
    held = [r for r in results if r.status is LineStatus.HELD]
    if held:
        files.append(_write(out_dir / "held-lines.csv", render_held_csv(held)))
    ledger.finish_run(run_id, [str(p) for p in files], _held_record(docs, run))
    return ExportSummary(run_id, files, docs, results, run.findings, notes)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8", newline="")
    return path


def _why_no_claim(doc: Documentation) -> str:
    status = doc.billing
    if status is None:
        return "not billed"
    if status.status == "ready":
        return "ready; not billed yet (traction export or POST /claims/runs)"
    if status.status == "held":
        codes = ", ".join(f.code for f in status.findings if f.severity == "blocking")
        return f"held ({codes}): see held-lines.csv"
    return status.note


def render_ledger_csv(rows: Sequence[ClaimLine]) -> str:
    """Ledger lines as billing-lines CSV, with the claim line id, frequency and what it replaces."""
    return render_csv(
        [as_billing_line(r) for r in rows],
        extra=[
            {
                "claim_line_id": str(r.id),
                "frequency": r.frequency,
                "replaces_line_id": "" if r.replaces_line_id is None else str(r.replaces_line_id),
                "payer": r.payer_key,
                "reason": r.reason,
            }
            for r in rows
        ],
    )


def render_held_csv(held: Sequence[LineResult]) -> str:
    """Held lines with every finding (code, severity, text) of their sessions."""
    return render_csv(
        [r.line for r in held],
        extra=[
            {
                "status": "held",
                "findings": " | ".join(
                    f"{f.code} ({f.severity.value}, {f.session_id}): {f.message}"
                    for f in r.findings
                ),
            }
            for r in held
        ],
    )


def claim_id(line_id: int | None) -> str:
    """CLM01 for a ledger line: unique per line, so a replacement names what it replaces."""
    return f"TRC{line_id}"


def render_claims_x12(
    store: Store, rows: Sequence[ClaimLine], options: ExportOptions, control_number: int
) -> str:
    """The ledger lines as one 837P interchange, one claim per line (its frequency code, and
    for a replacement or void the claim it replaces), providers named from the store."""
    clinicians = {c.npi: c.name for c in store.list_clinicians() if c.npi}

    def provider(npi: str) -> Provider | None:
        return Provider(clinicians.get(npi, npi), npi) if npi else None

    claims = [
        Claim(
            claim_id=claim_id(row.id),
            frequency=row.frequency,
            payer_key=row.payer_key,
            line=as_billing_line(row),
            rendering=provider(row.rendering_npi),
            supervising=provider(row.supervising_npi),
            replaces_claim_id=claim_id(row.replaces_line_id) if row.replaces_line_id else None,
        )
        for row in rows
    ]
    clinic = clinic_identity(options.clinic_file)
    return render_interchange(claims, clinic, control_number, datetime.now(options.time_zone))


def render(
    store: Store,
    doc: Documentation,
    fmt: ExportFormat,
    rows: Sequence[ClaimLine] = (),
    options: ExportOptions = ExportOptions(),
) -> bytes:
    """One session's document in ``fmt``. CSV, 837P and the FHIR charge carry ``rows``: the
    ledger line(s) that bill this session; CSV and 837P need at least one."""
    if fmt is ExportFormat.JSON:
        return render_json(doc).encode()
    if fmt is ExportFormat.PDF:
        from session.export.pdf_note import write_note  # matplotlib + reportlab: load on use

        buffer = io.BytesIO()
        row = store.get_session(doc.session_id)
        write_note(doc, facts_for(store, doc.session_id).plot_buckets(), buffer, row.start_t)
        return buffer.getvalue()
    lines = [as_billing_line(r) for r in rows]
    if fmt is ExportFormat.FHIR:
        bundle: dict[str, Any] = render_fhir(doc, lines[0] if lines else None)
        return json.dumps(bundle, indent=2).encode()
    if not rows:
        raise NothingToBill(
            f"session {doc.session_id} has no claim line to write as {fmt.value}: "
            f"{_why_no_claim(doc)}"
        )
    if fmt is ExportFormat.CSV:
        return render_ledger_csv(rows).encode()
    return render_claims_x12(store, rows, options, rows[0].id or 1).encode()


def render_plot(store: Store, doc: Documentation) -> bytes:
    """The session's force/time plot alone, as PNG (what the PDF note shows), from the curve
    reduced when the session was sealed."""
    from session.export.pdf_note import plot_png  # matplotlib: load on use

    row = store.get_session(doc.session_id)
    return plot_png(doc, facts_for(store, doc.session_id).plot_buckets(), row.start_t)


def preview(
    store: Store,
    session_id: str,
    options: ExportOptions = ExportOptions(),
    *,
    verify_seals: bool = True,
) -> tuple[Documentation, list[ClaimLine]]:
    """A session's documentation with its billing status, and the ledger lines that bill it,
    without billing anything (what the HTTP export of one session shows). ``verify_seals`` as
    for :func:`claim_run`."""
    ledger = ClaimsLedger(store.engine)
    run = claim_run(store, [session_id], options, verify_seals=verify_seals)
    covering = ledger.claimed(session_id)
    results: dict[str, LineResult] = {}
    rows: list[ClaimLine] = []
    if covering is not None:
        current = ledger.current(covering.id or 0)
        rows = [current]
        results[session_id] = LineResult(
            as_billing_line(covering),
            LineStatus.ALREADY_SENT,
            current,
            (),
            f"billed as claim line {current.id} (frequency {current.frequency})",
        )
    else:
        line = run.line_of(session_id)
        if line is not None:
            would = LineStatus.HELD if not run.line_ready(line) else LineStatus.SENT
            results[session_id] = LineResult(line, would, None, (), "not billed yet")
    doc = run.docs[0]
    billing = _status(doc, run, results)
    if covering is None and billing.status == "sent":
        billing = billing.model_copy(update={"status": "ready", "note": "ready; not billed yet"})
    if covering is not None and rows[0].session_ids[0] != session_id:
        rows = []
    return doc.model_copy(update={"billing": billing}), rows


def export_to_file(
    store: Store,
    session_id: str,
    fmt: ExportFormat,
    path: Path,
    options: ExportOptions = ExportOptions(),
    by: str = "traction",
) -> ExportSummary:
    """Bill one session and write its document in one format to ``path``. CSV and 837P are
    written only when this export sent the session's line; otherwise nothing is written and
    ``notes`` says why (held, already sent on another line, simulated)."""
    run, run_id, results = bill(store, [session_id], options, by, verify_seals=fmt.shows_seal)
    by_session = {sid: r for r in results for sid in r.line.session_ids}
    doc = run.docs[0].model_copy(update={"billing": _status(run.docs[0], run, by_session)})
    result = by_session.get(session_id)
    rows = (
        [result.claim_line]
        if result and result.status is LineStatus.SENT and result.claim_line
        else []
    )
    files: list[Path] = []
    notes: dict[str, str] = {}
    if fmt in (ExportFormat.CSV, ExportFormat.X12) and not rows:
        notes[session_id] = _why_no_claim(doc)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(store, doc, fmt, rows, options))
        files.append(path)
    ClaimsLedger(store.engine).finish_run(run_id, [str(p) for p in files], _held_record([doc], run))
    return ExportSummary(run_id, files, [doc], results, run.findings, notes)


class CorrectionRefused(ConfigError):
    """A correction whose recomputed line would not be ready; the message lists the findings."""


def correct_line(
    store: Store,
    line_id: int,
    reason: str,
    by: str,
    options: ExportOptions = ExportOptions(),
) -> ClaimLine:
    """Replace a sent line (X12 frequency 7) with the line its sessions' documentation gives now
    (after an amendment of diagnoses or modifiers, say). The new line must be ready."""
    ledger = ClaimsLedger(store.engine)
    current = ledger.get_line(line_id)
    run = claim_run(store, current.session_ids, options)
    line = run.line_of(current.session_ids[0])
    if line is None or not run.line_ready(line):
        blocking = [
            f"{f.code}: {f.message}" for f in run.findings if f.severity is Severity.BLOCKING
        ]
        raise CorrectionRefused(
            f"claim line {line_id}",
            "the corrected line is not ready: " + ("; ".join(blocking) or "no billable line"),
        )
    return ledger.correct(by, line_id, line, run.payer_of[line.session_ids[0]], reason)


def void_line(store: Store, line_id: int, reason: str, by: str) -> ClaimLine:
    """Void a sent line (X12 frequency 8); recorded as a run of its own."""
    return ClaimsLedger(store.engine).void(by, line_id, reason)


def claim_sessions(
    store: Store, session_ids: Sequence[str], options: ExportOptions, by: str
) -> ExportSummary:
    """Bill sessions through the ledger without writing files (the HTTP claim run): the lines
    sent are then pulled by cursor. No document is written, so seals count as last verified."""
    run, run_id, results = bill(store, session_ids, options, by, verify_seals=False)
    by_session = {sid: r for r in results for sid in r.line.session_ids}
    docs = [d.model_copy(update={"billing": _status(d, run, by_session)}) for d in run.docs]
    ClaimsLedger(store.engine).finish_run(run_id, [], _held_record(docs, run))
    return ExportSummary(run_id, [], docs, results, run.findings)


def _held_record(docs: Sequence[Documentation], run: ClaimRun) -> list[dict[str, Any]]:
    return [
        {
            "session_id": d.session_id,
            "status": d.billing.status,
            "codes": [f.code for f in run.findings_for(d.session_id)],
        }
        for d in docs
        if d.billing and d.billing.status in ("held", "simulated")
    ]
