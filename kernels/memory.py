"""Keeping freed memory for the next step, so that a training step does not page-fault.

Every new NumPy array is a request to the C library's allocator. glibc hands large freed blocks
back to the operating system (it unmaps blocks over its mmap threshold and trims the top of its
heap), and a later request of that size then gets fresh pages, which the kernel zero-fills on
first touch: a page fault per 4 KB. A ResNet-20 training step at batch 128 makes and drops about
140 MB of activations and gradients, so every step paid about 36,000 page faults, 0.1 s of a
0.8 s single-threaded step (docs/performance.md).

`keep_freed_memory()` tells glibc (mallopt) to serve blocks up to 32 MB from its heap and not to
trim the heap: freed blocks are reused by the next step, and after the first step there are no
more page faults. The resident size of the process then stays at its peak between steps instead
of shrinking; the peak itself does not grow. It changes nothing on other C libraries (macOS,
Windows, musl), and TINYRES_KEEP_FREED_MEMORY=0 leaves glibc's defaults alone.

It changes the allocator of the whole process, so nothing calls it on import: a training run
does, where it starts (tinyres.train.Trainer.fit, and the training steps `tinyres bench` times).
Plain Python and ctypes (no Numba needed); this module never imports tinyres.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1          # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
LARGEST_HEAP_BLOCK = 32 << 20  # glibc's upper limit for M_MMAP_THRESHOLD on 64-bit systems
NEVER_TRIM = (1 << 31) - 1     # bytes of free heap top before glibc trims: effectively never


def keep_freed_memory():
    """Set glibc's thresholds as above; returns True where it did."""
    if os.environ.get("TINYRES_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith(
            "linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK)
                    and libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
    except (OSError, AttributeError):          # not glibc
        return False
