"""Fixtures of the ROS 2 tests: a fresh DDS domain id per test, so no test sees another's (latched) data,
and `wire`, two DDS transports on that domain (the node's side and the test's side of loopback DDS)."""

import itertools
import os

import pytest

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
