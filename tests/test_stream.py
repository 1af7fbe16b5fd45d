from datetime import UTC, datetime

from devices.records import Event, EventKind, Finished, Outcome, Phase, Record, Sample
from devices.stream import LatestQueue, Stream


class Broken:
    def deliver(self, record: Record) -> None:
        raise RuntimeError("screen unplugged")


class Keep:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def deliver(self, record: Record) -> None:
        self.records.append(record)


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    stream, keep = Stream(), Keep()
    stream.subscribe(Broken())
    stream.subscribe(keep)
    sample = Sample("r", 0, 0.0, 10.0, 9.5, Phase.HOLD)
    errors = stream.publish(sample)
    assert len(errors) == 1 and keep.records == [sample]


async def test_latest_queue_drops_samples_never_events() -> None:
    queue = LatestQueue(maxlen=3)
    event = Event("r", 0.0, EventKind.TRIP, "over-force")
    queue.deliver(event)
    for i in range(5):
        queue.deliver(Sample("r", i, float(i), 1.0, 1.0, Phase.HOLD))
    queue.deliver(Finished("r", 9.0, datetime.now(UTC), Outcome.TRIPPED, "over-force", 5))
    got = [record async for record in queue]
    assert got[0] == event and isinstance(got[-1], Finished)
    assert queue.dropped == 4
