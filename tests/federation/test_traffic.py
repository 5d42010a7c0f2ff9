"""The metered grid: it counts the payload both ways and, on a deployment grid, pulls the replies
itself (Flower's deployment grid waits 3 s between looks) with Flower's semantics: every reply
is returned once, a missing one ends the wait at the timeout."""

from __future__ import annotations

from types import SimpleNamespace

from flwr.app import ConfigRecord

from fedrec.federation import traffic
from fedrec.federation.traffic import MeteredGrid


class SlowStoresGrid:
    """A deployment grid whose stores answer after a few looks (store 3 never does), through the
    push / pull API Flower's grids expose; no ``pull_interval`` (that is the in-memory grid's)."""

    def __init__(self, looks_before_reply: dict[int, int]) -> None:
        self.looks_before_reply = looks_before_reply
        self.looks = 0
        self.pushed: dict[str, Message] = {}

    def push_messages(self, messages):
        ids = []
        for message in messages:
            message_id = f"m{message.metadata.dst_node_id}"
            self.pushed[message_id] = message
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids):
        self.looks += 1
        ready = [i for i in message_ids if self.looks > self.looks_before_reply[self.pushed[i].metadata.dst_node_id]]
        return [StubMessage(ConfigRecord({"node": self.pushed[i].metadata.dst_node_id}), reply_to=i) for i in ready]


class StubMessage:
    """What the metered grid reads of a Flower message: its records and its metadata (a Flower
    Message needs a running SuperLink's run id to be built)."""

    def __init__(self, record: ConfigRecord, *, node: int = 0, reply_to: str = "") -> None:
        self.content = {"reply": record}
        self.metadata = SimpleNamespace(dst_node_id=node, reply_to_message_id=reply_to)

    def has_error(self) -> bool:
        return False

    def has_content(self) -> bool:
        return True


def asked(node: int) -> StubMessage:
    return StubMessage(ConfigRecord({"round": 1}), node=node)


class Clock:
    """The loop's clock, advanced only by its sleeps: the test reads time, it never measures it."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_deployment_grid_returns_every_reply_once_and_stops_at_the_timeout(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(traffic, "time", clock)
    monkeypatch.setattr(traffic, "DEPLOYMENT_PULL_INTERVAL", 0.01)
    grid = SlowStoresGrid({1: 0, 2: 3, 3: 10**9})
    metered = MeteredGrid(grid)
    replies = list(metered.send_and_receive([asked(1), asked(2), asked(3)], timeout=0.5))
    assert sorted(reply.content["reply"]["node"] for reply in replies) == [1, 2]  # store 3 never answered
    assert clock.now >= 0.5 and grid.looks > 4  # it kept looking until the timeout
    assert metered.bytes_received > 0

    grid = SlowStoresGrid({1: 0, 2: 3})
    replies = list(MeteredGrid(grid).send_and_receive([asked(1), asked(2)], timeout=None))
    assert sorted(reply.content["reply"]["node"] for reply in replies) == [1, 2] and grid.looks == 4  # done when all are in
