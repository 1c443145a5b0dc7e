"""vla.core.memory: glibc takes the settings; bad values are refused."""

import pytest

from vla.core.memory import MMAP_THRESHOLD_MAX, keep_freed_memory


def test_glibc_takes_the_settings():
    assert keep_freed_memory() is True  # the CI and dev machines run glibc (Debian)
    assert keep_freed_memory(trim_bytes=128 * 2**10, mmap_bytes=128 * 2**10) is True  # glibc's defaults


@pytest.mark.parametrize(("trim", "mmap"), [(-1, 2**20), (2**20, 0), (2**20, MMAP_THRESHOLD_MAX + 1)])
def test_bad_values_are_refused(trim, mmap):
    with pytest.raises(ValueError, match="keep_freed_memory"):
        keep_freed_memory(trim, mmap)
