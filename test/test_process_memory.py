"""The experiment's peak memory: every process below it, grandchildren included."""
import os
import subprocess
import sys
import threading
from pathlib import Path

from aloe.experiment.process_memory import PeakTreeMemory, descendants, shares_address_space, tree_memory

# A child that starts a grandchild holding 300 MB of written pages for two seconds.
HOLD = "import time; block = bytearray(300 * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep(2)"
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {HOLD!r}])"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:80]
    except OSError:
        return "(ended)"


def test_peak_counts_a_grandchild_and_ends_with_it():
    # Processes an earlier test left below this one (a multiprocessing resource tracker, a
    # node still shutting down) count too: measure what the child's tree adds to them.
    before = {pid: command_line(pid) for pid, _ in descendants(os.getpid())}
    baseline = tree_memory(os.getpid())
    with PeakTreeMemory(interval=0.2) as memory:
        child = subprocess.Popen([sys.executable, "-c", PARENT])
        child.wait(timeout=60)
    assert 300 * 2**20 <= memory.peak - baseline < 600 * 2**20, f"{memory.peak >> 20} MB with {baseline >> 20} MB before from {before}"
    assert child.pid not in {pid for pid, _ in descendants(os.getpid())}


def test_a_process_on_its_parents_address_space_is_not_counted_again():
    # A thread shares the process's address space, as a child between vfork and exec shares
    # its parent's; a started program has its own.
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert shares_address_space(thread.native_id, os.getpid())
    finally:
        stop.set()
        thread.join()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert not shares_address_space(child.pid, os.getpid())
    finally:
        child.kill()
        child.wait()
