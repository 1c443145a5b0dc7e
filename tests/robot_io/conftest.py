"""Fixtures of the ROS 2 tests: a fresh DDS domain id per test, so no test sees another's (latched) data,
`wire`, two DDS transports on that domain (the node's side and the test's side of loopback DDS), and
`capture`, a factory of recorders that keep the command messages a node publishes."""

import itertools
import os

import pytest

from robot_io import msgs
from robot_io.dds import DdsTransport

_COUNTER = itertools.count()


@pytest.fixture
def domain() -> int:
    """A DDS domain id private to this test: 20 ids per pytest process, processes spread by pid."""
    return 10 + (os.getpid() % 10) * 22 + next(_COUNTER) % 20  # 10..217, within Cyclone's 0..232


@pytest.fixture
def wire(domain):
    """(node transport, test transport), closed after the test."""
    a, b = DdsTransport(domain_id=domain), DdsTransport(domain_id=domain)
    yield a, b
    a.close()
    b.close()


class Capture:
    """A recorder (`VlaNode(..., recorder=)`): keeps every command message the node publishes in `sent`."""

    def __init__(self):
        self.sent = []

    def write(self, topic, msg):
        if isinstance(msg, (msgs.JointTrajectory, msgs.TwistStamped, msgs.Float64)):
            self.sent.append(msg)


@pytest.fixture
def capture():
    """Capture, the class: a test makes as many recorders as it needs."""
    return Capture
