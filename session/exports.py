"""Exports for billing offices, the CLI and the HTTP service: one place that turns stored sessions
into files, so every way in produces the same documents and the same readiness findings.

Billing lines are computed over all the sessions asked for together, so two sessions of one patient
on one date become one 97012 unit wherever they are exported from.
"""

from __future__ import annotations

import enum
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path

from devices.errors import ConfigError
from devices.units import ForceUnit
from session.billing import (
    BillingLine,
    Finding,
    Payer,
    billing_lines,
    blocked_sessions,
    check_readiness,
    default_ncci_pairs,
    default_payers,
)
from session.documentation import Documentation, build_documentation
from session.export.csv_lines import render_csv
from session.export.fhir_bundle import render_fhir
from session.export.json_doc import render_json
from session.export.x12_837p import render_x12
from session.store import SessionQuery, Store

DEFAULT_PAYER = "medicare"


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
    zone that decides dates of service, and for billing the payer override and the patient's
    therapy spend so far this year (KX)."""

    unit: ForceUnit = ForceUnit.LBF
    place_of_service: str = "11"
    time_zone: tzinfo = UTC
    payer_key: str | None = None
    year_to_date_spend: Decimal = Decimal(0)


@dataclass
class ClaimRun:
    """Documentation, billing lines and readiness findings for a set of sessions."""

    docs: list[Documentation]
    lines: list[BillingLine]
    findings: list[Finding]
    payers: dict[str, Payer] = field(default_factory=dict)

    @property
    def blocked(self) -> set[str]:
        return blocked_sessions(self.findings)

    def ready(self, session_id: str) -> bool:
        return session_id not in self.blocked

    def billed_on(self, session_id: str) -> list[BillingLine]:
        """The line(s) a session is billed on; empty for a session documented but not billed
        (a second session of the same patient that day is covered by the first one's line)."""
        return [line for line in self.lines if line.session_ids[0] == session_id]

    def findings_for(self, session_id: str) -> list[Finding]:
        return [f for f in self.findings if f.session_id == session_id]


def claim_run(
    store: Store,
    session_ids: Sequence[str],
    options: ExportOptions = ExportOptions(),
    payers: dict[str, Payer] | None = None,
) -> ClaimRun:
    """Document ``session_ids`` and compute their billing lines and findings, payer by payer
    (each session's patient's payer unless ``payer_key`` overrides it).

    The patient's other finished sessions on the same dates of service take part in the billing
    lines even when not asked for, so exporting a second session of the day on its own never
    bills 97012 twice; only the asked-for sessions are documented and reported on.
    """
    payers = payers or default_payers()
    payer_key, spend = options.payer_key, options.year_to_date_spend
    if payer_key is not None and payer_key not in payers:
        raise ConfigError(
            "payer", f"unknown payer {payer_key!r}; known: {', '.join(sorted(payers))}"
        )
    asked = list(dict.fromkeys(session_ids))
    same_day = _same_day_sessions(store, asked, options.time_zone)
    everyone = asked + [sid for sid in same_day if sid not in asked]
    docs = [
        build_documentation(store, sid, options.unit, options.place_of_service, options.time_zone)
        for sid in everyone
    ]
    by_payer: dict[str, list[Documentation]] = {}
    for doc in docs:
        key = payer_key or doc.payer or DEFAULT_PAYER
        if key not in payers:
            raise ConfigError(
                f"session {doc.session_id}",
                f"patient's payer {key!r} is not in configs/payers.toml; add it or pass a payer",
            )
        by_payer.setdefault(key, []).append(doc)
    lines: list[BillingLine] = []
    findings: list[Finding] = []
    pairs = default_ncci_pairs()
    for key, group in by_payer.items():
        lines += billing_lines(group, payers[key], spend, pairs)
        findings += check_readiness(group, payers[key], spend, pairs)
    wanted = set(asked)
    return ClaimRun(
        [d for d in docs if d.session_id in wanted],
        [line for line in lines if wanted.intersection(line.session_ids)],
        [f for f in findings if f.session_id in wanted],
        payers,
    )


def _same_day_sessions(store: Store, session_ids: Sequence[str], zone: tzinfo) -> list[str]:
    """Finished sessions of the same patients on the same local dates as ``session_ids``."""
    found: list[str] = []
    for sid in session_ids:
        row = store.get_session(sid)
        day = datetime.combine(row.started_at.astimezone(zone).date(), time.min, tzinfo=zone)
        query = SessionQuery(
            patient_id=row.patient_id, since=day, until=day + timedelta(days=1), unfinished=False
        )
        found += [other.id for other in store.find_sessions(query) if other.id not in found]
    return found


def render(store: Store, run: ClaimRun, doc: Documentation, fmt: ExportFormat) -> bytes:
    """One session's document in ``fmt``. CSV and 837P carry the line(s) this session is billed
    on; a session documented but not billed (a second one that day) yields the header only."""
    if fmt is ExportFormat.JSON:
        return render_json(doc).encode()
    if fmt is ExportFormat.PDF:
        from session.export.pdf_note import render_pdf  # matplotlib + reportlab: load on use

        buffer = io.BytesIO()
        row = store.get_session(doc.session_id)
        render_pdf(doc, store.iter_samples(doc.session_id), buffer, t0=row.start_t)
        return buffer.getvalue()
    billed = run.billed_on(doc.session_id)
    if fmt is ExportFormat.FHIR:
        return json.dumps(render_fhir(doc, billed[0] if billed else None), indent=2).encode()
    if fmt is ExportFormat.CSV:
        return render_csv(billed).encode()
    return render_x12(billed).encode() if billed else b""


def render_plot(store: Store, doc: Documentation) -> bytes:
    """The session's force/time plot alone, as PNG (what the PDF note shows)."""
    from session.export.pdf_note import plot_png, reduce_for_plot  # matplotlib: load on use

    row = store.get_session(doc.session_id)
    span = max(doc.delivered.elapsed_minutes * 60.0, 1.0)
    buckets = reduce_for_plot(store.iter_samples(doc.session_id), row.start_t, span)
    return plot_png(doc, buckets, row.start_t)


@dataclass
class ExportSummary:
    files: list[Path]
    ready: list[str]
    blocked: dict[str, list[Finding]]
    lines: list[BillingLine]
    findings: list[Finding] = field(default_factory=list)


def export_to_directory(
    store: Store,
    session_ids: Sequence[str],
    formats: Iterable[ExportFormat],
    out_dir: Path,
    options: ExportOptions = ExportOptions(),
    progress: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Write each session's files as ``<session>/<session><suffix>`` plus, for CSV, one combined
    ``billing-lines.csv`` of every line, the file billing systems import."""
    formats = list(formats)
    run = claim_run(store, session_ids, options)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for doc in run.docs:
        folder = out_dir / doc.session_id
        folder.mkdir(exist_ok=True)
        for fmt in formats:
            if fmt in (ExportFormat.CSV, ExportFormat.X12) and not run.billed_on(doc.session_id):
                continue
            path = folder / f"{doc.session_id}{fmt.suffix}"
            path.write_bytes(render(store, run, doc, fmt))
            files.append(path)
        if progress is not None:
            progress(doc.session_id)
    if ExportFormat.CSV in formats:
        combined = out_dir / "billing-lines.csv"
        combined.write_text(render_csv(run.lines))
        files.append(combined)
    return _summary(run, files)


def export_to_file(
    store: Store,
    session_id: str,
    fmt: ExportFormat,
    path: Path,
    options: ExportOptions = ExportOptions(),
) -> ExportSummary:
    """Write one session's document in one format to ``path``."""
    run = claim_run(store, [session_id], options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(store, run, run.docs[0], fmt))
    return _summary(run, [path])


def _summary(run: ClaimRun, files: list[Path]) -> ExportSummary:
    blocked = {sid: run.findings_for(sid) for sid in sorted(run.blocked)}
    ready = [doc.session_id for doc in run.docs if doc.session_id not in run.blocked]
    return ExportSummary(files, ready, blocked, run.lines, run.findings)
