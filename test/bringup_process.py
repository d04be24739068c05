"""`aloe bringup` (or another `aloe` command) as a child process whose output lines a test can wait for."""
import queue
import re
import resource
import signal
import subprocess
import sys
import threading
import time


class Bringup:
    def __init__(self, *args, cwd=None, file_size_limit=None, command="bringup"):
        """`file_size_limit` (bytes): the graph's processes cannot grow a file beyond it
        (RLIMIT_FSIZE; Python then gets EFBIG as it would get ENOSPC on a full disk)."""
        limit = None
        if file_size_limit is not None:
            def limit():
                resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "aloe.cli", command, *args],
            cwd=cwd,  # what nodes write to relative paths (the recorder's bags/) lands there
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit,
        )
        self.lines, self._queue = [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern, timeout_s=30.0):
        """The first match of `pattern` in the output so far or to come; None on timeout/exit."""
        regex = re.compile(pattern)
        for line in self.lines:
            if regex.search(line):
                return regex.search(line)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                return None
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match
        return None

    def pid_of(self, node):
        return int(self.wait_for(rf"started {node} \(pid (\d+)\)").group(1))

    def interrupt(self):
        self.process.send_signal(signal.SIGINT)

    def finish(self, timeout_s=30.0):
        """Exit code, once the output is fully read. A graph still running after `timeout_s`
        is stopped as Ctrl-C would stop it, and the test fails with everything it printed."""
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.interrupt()
            try:
                self.process.wait(30.0)
            except subprocess.TimeoutExpired:
                self.kill()
            self.wait_for(r"(?!)", timeout_s=2.0)
            raise AssertionError(f"the graph did not exit in {timeout_s:g} s; its output:\n{self.output()}") from None
        self.wait_for(r"(?!)", timeout_s=2.0)  # drain what is left
        return code

    def output(self):
        return "\n".join(self.lines)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
