"""The durable event queue: a table with enqueue, claim (lease + visibility timeout) and ack."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from lamina.store import schema as t


@dataclass(frozen=True)
class QueuedEvent:
    id: str
    account: str
    region: str
    function_name: str
    qualifier: str | None
    payload: bytes
    enqueued_at: float
    attempts: int
    lease_id: str


class EventQueue:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def enqueue(self, event_id: str, account: str, region: str, function_name: str, qualifier: str | None,
                payload: bytes) -> None:
        """Returns only once the event is committed: a 202 is never given for an event that could be lost."""
        now = time.time()
        with self._engine.begin() as c:
            c.execute(insert(t.events).values(id=event_id, account=account, region=region,
                                              function_name=function_name, qualifier=qualifier, payload=payload,
                                              enqueued_at=now, visible_at=now, attempts=0))

    def claim(self, visibility_s: float, limit: int = 10) -> list[QueuedEvent]:
        now = time.time()
        out: list[QueuedEvent] = []
        with self._engine.begin() as c:
            rows = c.execute(select(t.events).where(t.events.c.visible_at <= now)
                             .order_by(t.events.c.visible_at).limit(limit)).all()
            for row in rows:
                lease = str(uuid.uuid4())
                claimed = c.execute(update(t.events).where((t.events.c.id == row.id)
                                                           & (t.events.c.visible_at == row.visible_at))
                                    .values(visible_at=now + visibility_s, lease_id=lease,
                                            attempts=row.attempts + 1)).rowcount
                if claimed:
                    out.append(QueuedEvent(row.id, row.account, row.region, row.function_name, row.qualifier,
                                           row.payload, row.enqueued_at, row.attempts + 1, lease))
        return out

    def release_claims(self) -> int:
        """At start on a single node: claims held by a previous (crashed) process become visible again."""
        with self._engine.begin() as c:
            return int(c.execute(update(t.events).where(t.events.c.lease_id.is_not(None))
                                 .values(visible_at=time.time(), lease_id=None)).rowcount)

    def ack(self, event: QueuedEvent) -> None:
        with self._engine.begin() as c:
            c.execute(delete(t.events).where((t.events.c.id == event.id) & (t.events.c.lease_id == event.lease_id)))

    def retry_later(self, event: QueuedEvent, delay_s: float) -> None:
        with self._engine.begin() as c:
            c.execute(update(t.events).where((t.events.c.id == event.id) & (t.events.c.lease_id == event.lease_id))
                      .values(visible_at=time.time() + delay_s, lease_id=None))

    def depth(self) -> int:
        with self._engine.connect() as c:
            return len(c.execute(select(t.events.c.id)).all())
