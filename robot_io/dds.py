"""The Cyclone DDS transport: ROS 2 topics over plain DDS, so the node talks to ROS 2 without a ROS install.

Topic `<name>` is the DDS topic `rt/<name>`, types are `robot_io.msgs` structs named
`<pkg>::msg::dds_::<Type>_`, samples are XCDR1 little-endian: the conventions of rmw_cyclonedds, so
ROS 2 nodes on the same domain see these topics. The network set-up comes from Cyclone's usual
`CYCLONEDDS_URI` (see `loopback_config()` and `robot_io/cyclonedds_loopback.xml` for a 127.0.0.1-only
config with multicast off, used by the tests and the benchmark).

Receiving: one WaitSet over a read condition per subscription plus a guard condition for `close()`.
`spin_once` takes the raw samples and deserialises each one separately, so an undecodable sample is
counted in `errors[topic]` and dropped without losing its neighbours; callback exceptions are counted
and logged the same way.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cyclonedds._clayer import ddspy_take
from cyclonedds.core import GuardCondition, InstanceState, Qos, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from robot_io.msgs import dds_topic_name
from robot_io.transport import RELIABLE, QosProfile

log = logging.getLogger(__name__)

LOOPBACK_XML = Path(__file__).with_name("cyclonedds_loopback.xml")
_TAKE_BATCH = 64


def loopback_config() -> str:
    """A CYCLONEDDS_URI value for loopback-only DDS (127.0.0.1, multicast off, unicast discovery)."""
    return LOOPBACK_XML.resolve().as_uri()


def to_cyclone_qos(qos: QosProfile) -> Qos:
    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if qos.reliable
        else Policy.Reliability.BestEffort
    )
    durability = Policy.Durability.TransientLocal if qos.transient_local else Policy.Durability.Volatile
    return Qos(reliability, durability, Policy.History.KeepLast(qos.depth))


class DdsPublisher:
    """Writes one topic. `publish` is thread-safe (Cyclone serialises writes internally)."""

    def __init__(self, writer: DataWriter, topic: str, msg_type: type):
        self._writer, self.topic, self.msg_type = writer, topic, msg_type

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, self.msg_type):
            raise ValueError(f"{self.topic}: expected {self.msg_type.__name__}, got {type(msg).__name__}")
        self._writer.write(msg)

    def matched(self) -> int:
        """How many readers currently match this writer (discovery done)."""
        return len(self._writer.get_matched_subscriptions())


class _Subscription:
    def __init__(self, reader: DataReader, condition: ReadCondition, topic: str, msg_type: type, callback):
        self.reader, self.condition, self.topic, self.msg_type, self.callback = (
            reader,
            condition,
            topic,
            msg_type,
            callback,
        )


class DdsTransport:
    """Transport over Cyclone DDS. `domain_id` None: $ROS_DOMAIN_ID or 0 (ROS 2's rule)."""

    def __init__(self, domain_id: int | None = None):
        if domain_id is None:
            domain_id = int(os.environ.get("ROS_DOMAIN_ID", "0"))
        if not 0 <= domain_id <= 232:
            raise ValueError(f"DDS domain id: expected 0..232, got {domain_id}")
        self.domain_id = domain_id
        self.participant = DomainParticipant(domain_id)
        self._topics: dict[str, Topic] = {}
        self._subs: list[_Subscription] = []
        self._waitset = WaitSet(self.participant)
        self._wake = GuardCondition(self.participant)
        self._waitset.attach(self._wake)
        self._lock = threading.Lock()
        self._closed = False
        self.errors: dict[str, int] = {}
        self.received: dict[str, int] = {}

    def _topic(self, topic: str, msg_type: type) -> Topic:
        name = dds_topic_name(topic)
        with self._lock:
            existing = self._topics.get(name)
            if existing is not None:
                if existing.data_type is not msg_type:
                    raise ValueError(f"topic {topic!r} already used with type {existing.data_type.__name__}")
                return existing
            t = Topic(self.participant, name, msg_type)
            self._topics[name] = t
            return t

    def create_publisher(self, topic: str, msg_type: type, qos: QosProfile = RELIABLE) -> DdsPublisher:
        writer = DataWriter(self.participant, self._topic(topic, msg_type), qos=to_cyclone_qos(qos))
        return DdsPublisher(writer, topic, msg_type)

    def create_subscription(
        self, topic: str, msg_type: type, callback: Callable[[Any], None], qos: QosProfile = RELIABLE
    ) -> None:
        reader = DataReader(self.participant, self._topic(topic, msg_type), qos=to_cyclone_qos(qos))
        cond = ReadCondition(reader, SampleState.Any | ViewState.Any | InstanceState.Any)
        with self._lock:
            self._waitset.attach(cond)
            self._subs.append(_Subscription(reader, cond, topic, msg_type, callback))

    def _count_error(self, topic: str, what: str, exc: BaseException) -> None:
        self.errors[topic] = self.errors.get(topic, 0) + 1
        log.warning("%s on %s: %s: %s", what, topic, type(exc).__name__, exc)

    def spin_once(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for samples; deliver them to their callbacks; return the count."""
        if self._closed:
            return 0
        self._waitset.wait(max(0, int(timeout_s * 1e9)))
        if self._closed:
            return 0
        self._wake.set(False)
        ran = 0
        for sub in list(self._subs):
            if self._closed:
                break
            raw = ddspy_take(sub.reader._ref, sub.condition.mask, _TAKE_BATCH)
            if isinstance(raw, int):  # a DDS return code: the reader is gone
                continue
            for data, info in raw:
                if not info.valid_data:
                    continue
                self.received[sub.topic] = self.received.get(sub.topic, 0) + 1
                try:
                    msg = sub.msg_type.deserialize(data)
                except Exception as e:  # an undecodable sample from the wire
                    self._count_error(sub.topic, "undecodable sample", e)
                    continue
                try:
                    sub.callback(msg)
                    ran += 1
                except Exception as e:  # a callback must never stop the executor
                    self._count_error(sub.topic, "callback raised", e)
        return ran

    def wake(self) -> None:
        """Make a blocked `spin_once` return early (from another thread)."""
        self._wake.set(True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set(True)
        with self._lock:
            self._subs.clear()
            self._topics.clear()
        # Entities are released with the participant; dropping references lets Cyclone clean up.
        self.participant = None

    def __enter__(self) -> DdsTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
