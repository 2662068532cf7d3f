"""zoo.commands.host: the malloc setting the CLI applies takes effect and leaves results alone."""
import sys

import pytest

from zoo.commands import host


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_takes_effect_on_glibc():
    assert host.keep_freed_memory() is True
    big = bytearray(256 << 20)  # served from the heap now; must still be usable memory
    big[-1] = 7
    assert big[-1] == 7 and big[0] == 0
