"""zoo.commands.host: the malloc setting the CLI applies takes effect. Observed through glibc's
own counters (mallinfo2) in a fresh interpreter, so this process's allocator is left alone: a
64 MiB block is mmapped and handed back before the setting, and served from the heap and kept
after it."""
import json
import subprocess
import sys

import pytest

PROBE = """
import ctypes, ctypes.util, json
from zoo.commands import host

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype, libc.malloc.restype = Mallinfo2, ctypes.c_void_p
libc.malloc.argtypes, libc.free.argtypes = [ctypes.c_size_t], [ctypes.c_void_p]

def allocate(size=64 << 20):
    before = libc.mallinfo2()
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    during = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    return {"mmapped": during.hblkhd - before.hblkhd, "heap_kept": after.arena - before.arena}

print(json.dumps([allocate(), host.keep_freed_memory(), allocate()]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_serves_big_blocks_from_the_heap_and_keeps_them():
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, took_effect, after = json.loads(proc.stdout)
    assert before["mmapped"] >= 64 << 20 and before["heap_kept"] == 0   # glibc's default, as XLA's buffers get it
    assert took_effect is True
    assert after["mmapped"] == 0 and after["heap_kept"] >= 60 << 20
