"""Peak memory of a process tree: what a long run (a graph of node processes, a training)
holds at once, measured from /proc (Linux).

The proportional set size (Pss) splits each shared page among the processes that map it,
so the sum over the tree counts torch's and ROS's libraries once, not once per process,
which the largest single process's RSS (getrusage) would understate and a sum of RSS
would overstate.
"""
import ctypes
import os
import platform
import threading
from pathlib import Path

# kcmp(2), by architecture: whether two processes share one address space. None: not
# known here, and nothing is taken for shared.
KCMP_SYSCALL = {"x86_64": 312, "aarch64": 272}.get(platform.machine())
KCMP_VM = 1
LIBC = ctypes.CDLL(None)


def descendants(root: int) -> list:
    """(pid, parent pid) of every process below `root` (children, grandchildren, ...)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # "pid (command) state ppid ...": the command may hold spaces and parentheses
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        below = children.get(parent, [])
        found += [(pid, parent) for pid in below]
        frontier += below
    return found


def shares_address_space(pid: int, other: int) -> bool:
    """True for a child between vfork and exec (how subprocess starts programs): /proc
    shows it holding its parent's whole memory, which counted again would double it (a
    sample under CPU load caught a 10 MB child at its 1 GB parent's size)."""
    return KCMP_SYSCALL is not None and LIBC.syscall(KCMP_SYSCALL, pid, other, KCMP_VM, 0, 0) == 0


def proportional_set_size(pid: int) -> int:
    """Bytes of memory `pid` accounts for (0 once it has ended or cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_memory(root: int) -> int:
    """Bytes held now by `root`'s descendants together (not `root` itself)."""
    return sum(proportional_set_size(pid) for pid, parent in descendants(root)
               if not shares_address_space(pid, parent))


class PeakTreeMemory:
    """Samples the memory of this process's descendants every `interval` seconds while
    active; `peak` is the largest total seen, in bytes.

        with PeakTreeMemory() as memory:
            subprocess.run(...)
        memory.peak
    """

    def __init__(self, interval: float = 1.0):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while True:
            self.peak = max(self.peak, tree_memory(os.getpid()))
            if self._stop.wait(self.interval):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_):
        self._stop.set()
        self._thread.join()
