"""Fixtures of the ROS 2 tests: a fresh DDS domain id per test, so no test sees another's (latched) data."""

import itertools
import os

import pytest

_COUNTER = itertools.count()


@pytest.fixture
def domain() -> int:
    """A DDS domain id private to this test: 20 ids per pytest process, processes spread by pid."""
    return 10 + (os.getpid() % 10) * 22 + next(_COUNTER) % 20  # 10..217, within Cyclone's 0..232
