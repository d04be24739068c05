"""The experiment's peak memory: every process below it, grandchildren included."""
import os
import subprocess
import sys

from aloe.process_memory import PeakTreeMemory, descendants

# A child that starts a grandchild holding 300 MB of written pages for two seconds.
HOLD = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(2)"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {HOLD!r}])"


def test_peak_counts_a_grandchild_and_ends_with_it():
    with PeakTreeMemory(interval=0.2) as memory:
        child = subprocess.Popen([sys.executable, "-c", PARENT])
        child.wait(timeout=60)
    assert 300 * 2**20 <= memory.peak < 600 * 2**20
    assert child.pid not in descendants(os.getpid())

