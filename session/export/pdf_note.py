"""The clinical note as PDF: the 97012 documentation elements and the force/time plot.

The plot is drawn with matplotlib (Agg) and placed by reportlab. It reads in black and white: the
measured force is a solid line with its min/max envelope hatched, the target dashed, trips marked
with x and a dotted line, pauses hatched bands. Samples are reduced for plotting to the minimum and
maximum of each time bucket, so a one-tick over-force peak is still drawn.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import UTC
from pathlib import Path
from typing import BinaryIO

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from reportlab.lib import colors  # noqa: E402
from reportlab.lib.pagesizes import LETTER  # noqa: E402
from reportlab.lib.styles import getSampleStyleSheet  # noqa: E402
from reportlab.lib.units import inch  # noqa: E402
from reportlab.platypus import (  # noqa: E402
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from devices.units import from_newtons  # noqa: E402
from session.documentation import Documentation  # noqa: E402
from session.facts import PLOT_BUCKETS, Bucket, SampleLike, reduce_for_plot  # noqa: E402
from session.localtime import local_time  # noqa: E402

__all__ = ["PLOT_BUCKETS", "Bucket", "plot_png", "reduce_for_plot", "render_pdf", "write_note"]

TRIP_KINDS = ("trip", "stop_switch", "fault", "link_lost")


def plot_png(doc: Documentation, buckets: list[Bucket], t0: float) -> bytes:
    """The force/time plot as PNG bytes, in the documentation's force unit."""
    unit = doc.delivered.force_unit
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=150)
    try:
        minutes = [((b.t_min + b.t_max) / 2 - t0) / 60 for b in buckets]
        lo = [from_newtons(b.lo, unit) for b in buckets]
        hi = [from_newtons(b.hi, unit) for b in buckets]
        target = [from_newtons(b.target_hi, unit) for b in buckets]
        ax.fill_between(
            minutes, lo, hi, facecolor="none", edgecolor="0.55", hatch="....", linewidth=0
        )
        ax.plot(
            minutes,
            hi,
            color="black",
            linewidth=0.9,
            linestyle="-",
            label="measured (max per bucket)",
        )
        ax.plot(minutes, target, color="0.35", linewidth=1.2, linestyle="--", label="target")
        for b in buckets:
            if b.paused:
                ax.axvspan(
                    (b.t_min - t0) / 60,
                    (b.t_max - t0) / 60,
                    facecolor="none",
                    hatch="///",
                    edgecolor="0.6",
                    linewidth=0,
                )
        trip_label = "trip / stop"
        pause_label = "pause"
        for o in doc.delivered.interruptions:
            x = o.at_s / 60
            if o.kind in TRIP_KINDS:
                ax.axvline(x, color="black", linestyle=":", linewidth=1.2)
                ax.plot(
                    [x],
                    [max(hi, default=0)],
                    marker="x",
                    color="black",
                    markersize=9,
                    linestyle="none",
                    label=trip_label,
                )
                ax.annotate(
                    o.kind.replace("_", " "),
                    (x, max(hi, default=0)),
                    textcoords="offset points",
                    xytext=(4, -12),
                    fontsize=7,
                )
                trip_label = "_"
            elif o.kind == "pause":
                ax.axvline(x, color="0.3", linestyle="-.", linewidth=1.0, label=pause_label)
                pause_label = "_"
        ax.set_xlabel("time (min)")
        ax.set_ylabel(f"force ({unit.value})")
        ax.set_ylim(bottom=0)
        ax.grid(True, color="0.85", linewidth=0.5)
        ax.legend(loc="lower right", fontsize=7, frameon=True)
        ax.set_title(f"Session {doc.session_id}: force against time", fontsize=9)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        return buffer.getvalue()
    finally:
        plt.close(fig)


def _rows(doc: Documentation) -> list[tuple[str, str]]:
    p, d, u = doc.prescribed, doc.delivered, doc.prescribed.force_unit.value

    def f(v: float | None, suffix: str = "") -> str:
        return "-" if v is None else f"{v:g}{suffix}"

    sup = doc.supervising
    zone = doc.started_at.tzinfo or UTC  # documentation is built in the clinic's time zone
    return [
        ("Date of service", doc.date_of_service.isoformat()),
        (
            "Started / ended",
            f"{local_time(doc.started_at, zone)} / "
            + (local_time(doc.ended_at, zone) if doc.ended_at else "-")
            + (
                f" (wall clock; session time ran x{doc.time_scale:g}: SIMULATED)"
                if doc.simulated
                else ""
            ),
        ),
        ("Patient", doc.patient_ref),
        (
            "Intervention",
            f"CPT 97012 mechanical traction, {doc.traction_type.value}"
            + (" (vertebral axial decompression)" if doc.decompression else ""),
        ),
        ("Region(s)", ", ".join(r.value for r in doc.regions)),
        (
            "Device",
            f"{doc.device.manufacturer} {doc.device.model}, serial {doc.device.serial}, firmware {doc.device.firmware} ({doc.device.table})",
        ),
        (
            "Treating",
            f"{doc.treating.name}, {doc.treating.credentials} ({doc.treating.discipline.value})",
        ),
        ("Supervising", f"{sup.name}, {sup.credentials}" if sup else "-"),
        ("Supervision", doc.supervision.value.replace("_", " ")),
        (
            "Settings",
            f"hold {f(p.hold_force, ' ' + u)} for {f(p.hold_s, ' s')}, rest {f(p.rest_force, ' ' + u)} for {f(p.rest_s, ' s')}, "
            f"steps +{p.progression_steps}/-{p.regression_steps}, ramp {f(p.ramp_per_s, ' ' + u + '/s')}, "
            f"angle {f(p.angle_deg, ' deg')}, position {p.position or '-'}, prescribed {f(p.total_minutes, ' min')}",
        ),
        (
            "Delivered",
            f"{d.treatment_minutes:g} min treatment ({d.elapsed_minutes:g} min elapsed, {d.paused_s:g} s paused), "
            f"{d.time_at_target_s:g} s at target (within {d.target_tolerance:g} {u}), peak {f(d.peak_hold_force, ' ' + u)}, "
            f"mean {f(d.mean_hold_force, ' ' + u)} in hold, {d.cycles_summary or str(d.cycles) + ' cycles'}, {d.sample_count} samples",
        ),
        (
            "Visit minutes",
            f"timed {f(doc.visit_timed_minutes)}, total treatment {f(doc.visit_treatment_minutes)}",
        ),
        (
            "Interruptions",
            "; ".join(f"{o.at_s:.0f} s {o.kind}: {o.reason}" for o in d.interruptions) or "none",
        ),
        (
            "Settings changes",
            "; ".join(f"{o.at_s:.0f} s: {o.reason}" for o in d.settings_changes) or "none",
        ),
        (
            "Outcome",
            f"{doc.outcome.value}" + (f": {doc.outcome_reason}" if doc.outcome_reason else ""),
        ),
        ("Diagnoses", ", ".join(doc.diagnoses) or "MISSING"),
        ("Medical necessity", doc.medical_necessity or "MISSING"),
        (
            "Plan of care",
            (
                f"{doc.plan_of_care.reference}"
                + (f": {doc.plan_of_care.goals}" if doc.plan_of_care.goals else "")
            )
            if doc.plan_of_care
            else "MISSING",
        ),
        ("Patient response", doc.patient_response or "MISSING"),
        ("ABN", doc.abn.value.replace("_", " ")),
        (
            "Amendments",
            "; ".join(
                f"{local_time(a.at, zone)} {a.by}: {a.field} - {a.reason}" for a in doc.amendments
            )
            or "none",
        ),
        (
            "Seal",
            f"{doc.seal.algorithm} {doc.seal.digest[:16]}... ({'verified' if doc.seal.verified else 'DOES NOT MATCH'})"
            if doc.seal
            else "not sealed",
        ),
        (
            "Signature",
            f"{doc.signature.name}, {doc.signature.credentials}, "
            f"{local_time(doc.signature.signed_at, zone)}"
            if doc.signature
            else "UNSIGNED",
        ),
    ] + (
        [
            (
                "Co-signature",
                f"{doc.cosignature.name}, {doc.cosignature.credentials}, "
                f"{local_time(doc.cosignature.signed_at, zone)}",
            )
        ]
        if doc.cosignature
        else []
    )


def render_pdf(
    doc: Documentation,
    samples: Iterable[SampleLike],
    out: str | Path | BinaryIO,
    t0: float | None = None,
) -> None:
    """Write the note to ``out`` (a path or a binary stream). ``samples`` are streamed once;
    ``t0`` is the session time of the start (default: the first sample)."""
    iterator = iter(samples)
    first = next(iterator, None)
    buckets: list[Bucket] = []
    start = t0 if t0 is not None else (first.t if first else 0.0)
    if first is not None:
        span = max(doc.delivered.elapsed_minutes * 60 + (first.t - start), 1.0)

        def chained() -> Iterable[SampleLike]:
            yield first
            yield from iterator

        buckets = reduce_for_plot(chained(), start, span)
    write_note(doc, buckets, out, start)


def write_note(
    doc: Documentation, buckets: list[Bucket], out: str | Path | BinaryIO, t0: float
) -> None:
    """Write the note with a plot already reduced (a sealed session's stored facts)."""
    start = t0
    styles = getSampleStyleSheet()
    cell = styles["BodyText"].clone("cell", fontSize=8.5, leading=10.5)
    story: list[object] = [
        Paragraph("Mechanical traction (CPT 97012): treatment note", styles["Title"]),
        *(
            [
                Paragraph(
                    f"SIMULATED SESSION (x{doc.time_scale:g} time): a rehearsal on a simulated "
                    "table, not a treatment. Never billed.",
                    styles["Heading2"],
                )
            ]
            if doc.simulated
            else []
        ),
        Spacer(1, 4),
    ]
    table = Table(
        [[Paragraph(f"<b>{k}</b>", cell), Paragraph(_escape(v), cell)] for k, v in _rows(doc)],
        colWidths=[1.35 * inch, 5.9 * inch],
    )
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story.append(table)
    story.append(Spacer(1, 8))
    if buckets:
        png = plot_png(doc, buckets, start)
        story.append(Image(io.BytesIO(png), width=7.3 * inch, height=7.3 * inch * 3.2 / 7.5))
        story.append(
            Paragraph(
                "Figure: force against time. Solid: measured; dashed: target; x and dotted line: trip or stop; hatched band: pause.",
                cell,
            )
        )
    else:
        story.append(Paragraph("No samples were recorded: no force plot.", cell))
    SimpleDocTemplate(
        out if not isinstance(out, Path) else str(out),
        pagesize=LETTER,
        title=f"97012 note {doc.session_id}",
        leftMargin=0.6 * inch,
        rightMargin=0.6 * inch,
        topMargin=0.5 * inch,
        bottomMargin=0.5 * inch,
    ).build(story)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
