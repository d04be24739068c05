"""The embedded launcher behind `aloe bringup`, for installs without the `launch` package.

It starts each node of the bringup description as its own process with the same
arguments `ros2 launch aloe bringup.launch.py` would give it, prefixes every output line
with the node's name, and stops all of them on Ctrl-C, at the end of a bounded run, when a
node marked `ends_graph` has finished, or as soon as one of them dies (saying which one
and why).
"""
import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from aloe.graph.bringup import Graph, node_executables


STACK_DUMP_SIGNAL = signal.SIGUSR1  # every aloe node prints its threads' stacks on it
STACK_DUMP_WAIT_S = 0.5


class RunnerError(RuntimeError):
    """The graph cannot be started; the message is one line for the user."""


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple
    ends_graph: bool = False  # its exit with code 0 means the graph's work is done


def normalize_namespace(namespace: str) -> str:
    return "/" + namespace.strip("/")


def ros_arguments(node_name: str, namespace: str, parameter_files) -> list:
    """The --ros-args both launchers give a node: its name, namespace and parameter files."""
    args = ["--ros-args", "-r", f"__node:={node_name}", "-r", f"__ns:={normalize_namespace(namespace)}"]
    for path in parameter_files:
        args += ["--params-file", str(path)]
    return args


def node_processes(graph: Graph, namespace: str, parameter_files) -> list:
    """One process per node, each running the node's console entry point module."""
    targets = node_executables()
    processes = []
    for node in graph.nodes:
        module = targets[node.executable].split(":")[0]
        argv = (sys.executable, "-m", module, *ros_arguments(node.name, namespace, parameter_files))
        processes.append(ProcessSpec(node.name, argv, node.ends_graph))
    return processes


def graph_environment() -> dict:
    """Our environment with discovery kept on this machine unless the user chose otherwise."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class NamespaceLock:
    """Refuses a second `aloe bringup` on the same namespace and domain on this machine."""

    def __init__(self, namespace: str, domain_id: str):
        safe = normalize_namespace(namespace).strip("/").replace("/", "_") or "root"
        self.path = Path(tempfile.gettempdir()) / f"aloe-bringup-domain{domain_id}-{safe}.lock"
        self.file = None

    def acquire(self) -> None:
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            owner = self.file.read().strip() or "unknown"
            self.file.close()
            raise RunnerError(f"another aloe bringup (pid {owner}) is already running on this namespace and ROS_DOMAIN_ID") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def die_with_parent() -> None:
    """In a node's process, before exec: get SIGTERM when the runner dies, however it dies
    (even SIGKILL), so no node outlives its graph (Linux; elsewhere the runner's own stop
    has to do)."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Runner:
    def __init__(self, processes, env=None, out=sys.stdout, stop_timeout_s: float = 5.0):
        self.specs = list(processes)
        self.env = env if env is not None else graph_environment()
        self.out = out
        self.stop_timeout_s = stop_timeout_s
        self.children = {}  # name -> Popen
        self.tails = {}  # name -> last output lines, for saying why a node died
        self.readers = []
        self.print_lock = threading.Lock()
        self.stop_requested = threading.Event()

    def say(self, line: str, prefix: str = "aloe") -> None:
        with self.print_lock:
            print(f"[{prefix}] {line}", file=self.out, flush=True)

    def start(self) -> None:
        for spec in self.specs:
            # A session of its own: a terminal's Ctrl-C reaches the runner only, which then
            # stops the nodes in order instead of racing them.
            child = subprocess.Popen(
                spec.argv,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
                text=True,
                bufsize=1,
            )
            self.children[spec.name] = child
            self.tails[spec.name] = deque(maxlen=20)
            reader = threading.Thread(target=self._relay, args=(spec.name, child), daemon=True)
            reader.start()
            self.readers.append(reader)
            self.say(f"started {spec.name} (pid {child.pid})")

    def _relay(self, name: str, child: subprocess.Popen) -> None:
        for line in child.stdout:
            line = line.rstrip("\n")
            self.tails[name].append(line)
            self.say(line, prefix=name)

    def request_stop(self, *_signal_args) -> None:
        self.stop_requested.set()

    def wait(self, duration_s=None) -> tuple:
        """Block until the duration ends, a stop is requested, or a node exits.

        Returns ("duration" | "stopped", None, None), ("finished", name, 0) when a node
        marked `ends_graph` is done, or ("died", name, exit code).
        """
        ends_graph = {spec.name for spec in self.specs if spec.ends_graph}
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while True:
            if self.stop_requested.wait(0.1):
                return ("stopped", None, None)
            for name, child in self.children.items():
                code = child.poll()
                if code == 0 and name in ends_graph:
                    return ("finished", name, code)
                if code is not None:
                    return ("died", name, code)
            if deadline is not None and time.monotonic() >= deadline:
                return ("duration", None, None)

    def why(self, name: str) -> str:
        """The node's last non-empty output line, usually its error."""
        lines = [line for line in self.tails.get(name, ()) if line.strip()]
        return lines[-1].strip() if lines else "no output"

    def stop(self) -> dict:
        """SIGINT every running node, escalate to SIGTERM and SIGKILL; return exit codes."""
        running = [c for c in self.children.values() if c.poll() is None]
        for child in running:
            child.send_signal(signal.SIGINT)
        for escalation in (signal.SIGTERM, signal.SIGKILL):
            deadline = time.monotonic() + self.stop_timeout_s
            for child in running:
                try:
                    child.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            running = [c for c in running if c.poll() is None]
            if escalation == signal.SIGKILL and running:
                # Before the kill, each stuck node prints where its threads are (aloe nodes
                # dump their stacks on this signal), so the log says why it hung.
                for child in running:
                    self.say(f"pid {child.pid} did not stop: the stacks of its threads follow")
                    child.send_signal(STACK_DUMP_SIGNAL)
                time.sleep(STACK_DUMP_WAIT_S)
            for child in running:
                self.say(f"pid {child.pid} did not stop in {self.stop_timeout_s:g} s: sending {escalation.name}")
                child.send_signal(escalation)
        for child in self.children.values():
            child.wait()
        for reader in self.readers:
            reader.join(timeout=1.0)
        return {name: child.returncode for name, child in self.children.items()}
