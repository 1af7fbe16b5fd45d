"""What journalling every record first costs, and whether recording ever holds up a tick.

1. The journal's write path against a raw baseline in the same process: a 50 Hz session's
   records appended, then written and fsynced every 0.25 s (12-13 samples a flush), against
   ``os.write`` + ``os.fsync`` of the same bytes already encoded (the disk's own cost).
2. Ticks with recording on: two 50 Hz deadline loops publish samples to a recorder each (journal,
   then a SQLite store) for ``TICK_S`` seconds, against the same loops with no recorder, in the
   same process. Counted: ticks later than half a period (missed deadlines), the longest gap
   between two samples, the lateness of the first second's ticks (the first write), and then a
   long session's finish: 60 000 samples ingested and sealed while the loops keep ticking, with
   the recorder's stall warnings counted (the seal is not watched as a stall).

Run from the repository root: ``.venv/bin/python bench/bench_journal.py`` (about a minute).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_recorder import new_store, samples_for, started
from benchutil import machine, write_section

from devices.contract import StopKind
from devices.records import EventKind, Finished, Outcome, Phase, Sample
from devices.stream import Stream
from session.journal import JournalWriter, encode
from session.recorder import Recorder
from session.store import SessionContext, Store

FLUSHES = 2_000  # 0.25 s flushes: about 8 minutes of a 50 Hz session
PER_FLUSH = 12
TICK_S = 20.0
PERIOD = 0.02
LONG_SESSION = 60_000
ROUNDS = 3


def journal_rate(folder: Path, round_no: int, context: SessionContext) -> float:
    """Samples per second through append + take + write(fsync), flush by flush."""
    run_id = f"journal-{round_no}"
    writer = JournalWriter.create(folder / "journals", run_id, context)
    chunks = [samples_for(run_id, PER_FLUSH, i * PER_FLUSH) for i in range(FLUSHES)]
    begin = time.perf_counter()
    for chunk in chunks:
        for sample in chunk:
            writer.append(sample)
        writer.write(writer.take())
    seconds = time.perf_counter() - begin
    writer.remove()
    return FLUSHES * PER_FLUSH / seconds


def raw_rate(folder: Path, round_no: int) -> float:
    """Samples per second through os.write + os.fsync of the same bytes, encoded beforehand."""
    run_id = f"journal-{round_no}"
    chunks = [
        b"".join(encode(s) for s in samples_for(run_id, PER_FLUSH, i * PER_FLUSH))
        for i in range(FLUSHES)
    ]
    fd = os.open(folder / f"raw-{round_no}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    begin = time.perf_counter()
    for chunk in chunks:
        os.write(fd, chunk)
        os.fsync(fd)
    seconds = time.perf_counter() - begin
    os.close(fd)
    return FLUSHES * PER_FLUSH / seconds


def no_stop(kind: StopKind, reason: str) -> None:
    raise RuntimeError(f"the recorder asked to stop ({kind}): {reason}")


async def ticking(stream: Stream | None, run_id: str, seconds: float) -> list[float]:
    """A 50 Hz deadline loop publishing one sample a tick; returns each tick's lateness."""
    lateness: list[float] = []
    begin = time.monotonic()
    for seq in range(int(seconds / PERIOD)):
        deadline = begin + seq * PERIOD
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        lateness.append(now - deadline)
        if stream is not None:
            stream.publish(Sample(run_id, seq, now - begin, 200.0, 199.0, Phase.HOLD))
    return lateness


def summary(lateness: list[float]) -> tuple[int, float, float, float]:
    """(ticks later than half a period, share on time, longest gap between ticks, worst
    lateness in the first second)."""
    late = sum(1 for x in lateness if x > PERIOD / 2)
    gaps = [PERIOD + b - a for a, b in zip(lateness, lateness[1:], strict=False)]
    first = max(lateness[: int(1 / PERIOD)])
    return late, 1 - late / len(lateness), max(gaps), first


async def with_recording(store: Store, context: SessionContext, folder: Path) -> dict[str, float]:
    recorders, streams, runs = [], [], []
    for n in range(2):
        run_id = f"ticks-{n}"
        recorder = Recorder(store, context, no_stop, journal_dir=folder / "journals")
        stream = Stream()
        stream.subscribe(recorder)
        recorder.start()
        stream.publish(started(run_id))
        recorders.append(recorder)
        streams.append(stream)
        runs.append(run_id)
    ticks = [asyncio.create_task(ticking(s, r, TICK_S)) for s, r in zip(streams, runs, strict=True)]
    # Meanwhile a long session finishes: 60 000 samples to ingest, then a seal over all of them.
    long_run = "long-session"
    long = Recorder(store, context, no_stop, journal_dir=folder / "journals")
    long.start()
    long.deliver(started(long_run))
    await asyncio.sleep(TICK_S / 2)  # first half: steady recording only
    # It arrives as fast as the loop lets it (a real one took 20 minutes), a tick's worth of
    # records at a time, so what is measured is ingesting and sealing, not this loop's own burst.
    samples = samples_for(long_run, LONG_SESSION)
    for first in range(0, LONG_SESSION, 50):
        for sample in samples[first : first + 50]:
            long.deliver(sample)
        await asyncio.sleep(0)
    long.deliver(
        Finished(
            long_run, LONG_SESSION * PERIOD, datetime.now(UTC), Outcome.COMPLETED, "b", LONG_SESSION
        )
    )
    finish_began = time.perf_counter()
    await long.wait_finished()
    long_s = time.perf_counter() - finish_began
    lateness = await asyncio.gather(*ticks)
    for stream, recorder, run_id in zip(streams, recorders, runs, strict=True):
        stream.publish(Finished(run_id, TICK_S, datetime.now(UTC), Outcome.COMPLETED, "bench", 0))
        await recorder.wait_finished()
        await recorder.close()
    await long.close()
    warnings = sum(
        1
        for run_id in [*runs, long_run]
        for e in store.iter_events(run_id)
        if e.kind == EventKind.WARNING
    )
    half = int(TICK_S / PERIOD / 2)
    late, on_time, gap, first = summary([x for one in lateness for x in one[:half]])
    late2, on_time2, gap2, _ = summary([x for one in lateness for x in one[half:]])
    return {
        "late": late,
        "on_time": on_time,
        "gap": gap,
        "first": first,
        "late2": late2,
        "on_time2": on_time2,
        "gap2": gap2,
        "long_s": long_s,
        "warnings": warnings,
        "ticks": sum(len(x) for x in lateness) / 2,
    }


async def without_recording() -> dict[str, float]:
    lateness = await asyncio.gather(*(ticking(None, "x", TICK_S) for _ in range(2)))
    late, on_time, gap, first = summary([x for one in lateness for x in one])
    return {"late": late, "on_time": on_time, "gap": gap, "first": first}


def main() -> None:
    machine_line = machine()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="traction-bench-") as tmp:
        folder = Path(tmp)
        store, context = new_store(folder, "journal.db")
        journals: list[float] = []
        raws: list[float] = []
        for round_no in range(ROUNDS):
            raws.append(raw_rate(folder, round_no))
            journals.append(journal_rate(folder, round_no, context))
        best_journal, best_raw = max(journals), max(raws)
        base = asyncio.run(without_recording())
        rec = asyncio.run(with_recording(store, context, folder))
        store.engine.dispose()
    took = time.perf_counter() - began
    lines = [
        "### Journal write path against os.write + fsync of the same bytes",
        "",
        f"{PER_FLUSH} samples per flush (0.25 s at 50 Hz), {FLUSHES} flushes, each fsynced; "
        f"best of {ROUNDS} alternating runs.",
        "",
        "| journal (encode, write, fsync) samples/s | raw write + fsync samples/s | ratio |",
        "|---|---|---|",
        f"| {best_journal:,.0f} | {best_raw:,.0f} | {best_journal / best_raw:.2f} |",
        "",
        f"A 50 Hz session needs 50 samples/s: the journal has {best_journal / 50:,.0f}x that.",
        "",
        "### Ticks with recording on",
        "",
        f"Two 50 Hz deadline loops for {TICK_S:g} s each publishing to a recorder (journal, "
        f"then SQLite); halfway, a {LONG_SESSION:,}-sample session is ingested and sealed beside "
        "them in the same process; baseline: the same loops with no recorder, same process.",
        "",
        "| | ticks on time | ticks > 10 ms late | longest gap, ms | worst first-second "
        "lateness, ms |",
        "|---|---|---|---|---|",
        f"| recording, first half | {100 * rec['on_time']:.2f}% | {rec['late']:.0f} of "
        f"{rec['ticks']:.0f} | {1000 * rec['gap']:.1f} | {1000 * rec['first']:.1f} |",
        f"| recording, second half (+ long session ingested and sealed) | "
        f"{100 * rec['on_time2']:.2f}% | {rec['late2']:.0f} of {rec['ticks']:.0f} | "
        f"{1000 * rec['gap2']:.1f} | - |",
        f"| no recorder (whole run) | {100 * base['on_time']:.2f}% | {base['late']:.0f} of "
        f"{2 * TICK_S / PERIOD:.0f} | "
        f"{1000 * base['gap']:.1f} | {1000 * base['first']:.1f} |",
        "",
        f"- the {LONG_SESSION:,}-sample session ingested and sealed in {rec['long_s']:.1f} s; "
        f"recorder stall warnings in all three sessions: **{rec['warnings']:.0f}**",
        "",
        "Reading: steady recording costs the ticks about what the machine's own load does; the",
        "long session's ingest and seal, running in worker threads of the same interpreter, take the",
        "GIL from the loops (the seal raises no stall warning, but ticks are late). That is what a",
        "process per treatment (issue 12.1, not built yet) removes: the loops would not share an",
        "interpreter with ingesting, sealing or the HTTP service.",
        "",
        f"Total run time {took:.0f} s.",
        "",
    ]
    print("\n".join(lines))
    write_section(
        "bench_journal",
        "Session journal and recording beside ticking loops (bench/bench_journal.py)",
        machine_line,
        lines,
    )


if __name__ == "__main__":
    main()
