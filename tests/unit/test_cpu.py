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


THREADS = """
import json, os
from bench.common import limit_xla_threads
limit_xla_threads(1)
os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=3"
import jax
print(json.dumps([jax.device_count(), len(os.sched_getaffinity(0)), os.environ["XLA_FLAGS"]]))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="pins CPUs with sched_setaffinity")
def test_limiting_xla_threads_keeps_every_later_xla_flag_in_effect():
    """bench/common.limit_xla_threads once appended a word that is not an XLA flag, and XLA
    silently dropped every flag after it: a device count set later must still hold."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, cwd=root, check=True,
                         env={"PATH": "", "PYTHONPATH": str(root), "XLA_FLAGS": ""})
    devices, cpus, flags = json.loads(out.stdout)
    assert devices == 3 and cpus == 1 and all(word.startswith("--") for word in flags.split())
