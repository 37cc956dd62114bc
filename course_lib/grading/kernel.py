"""One IPython kernel, started in the sandbox (or not), driven cell by cell with time limits.

:class:`Kernel` starts ``python -m ipykernel_launcher`` (inside bubblewrap when given a
:class:`~course_lib.grading.sandbox.SandboxSpec`), connects to it over ZeroMQ on Unix sockets
in the scratch's ``ipc/`` folder (the sandbox has no network, not even the host's loopback),
and runs code with :meth:`Kernel.execute`:

* a cell that runs past its time limit is interrupted (an ``interrupt_request`` on the control
  channel: ``KeyboardInterrupt`` in the cell); a kernel that does not stop within
  :data:`INTERRUPT_GRACE` seconds (it ignores SIGINT) is killed, and so is everything it started;
* every message the judge receives is at most :data:`MAX_MESSAGE_BYTES` (ZeroMQ drops larger
  ones), and each cell keeps at most :data:`MAX_OUTPUT_LINES` lines and
  :data:`MAX_OUTPUT_CHARS` characters of output, so a notebook that prints gigabytes costs the
  grader nothing;
* a kernel that dies (``os._exit``, a crash, the memory limit) is noticed at once.

:func:`execute_notebook` runs a whole notebook this way (what ``validate`` uses).
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from course_lib.grading.sandbox import (
    DEFAULT_MAX_PROCESSES,
    SANDBOX_IPC,
    ResourceGroup,
    SandboxSpec,
    Watchdog,
    kernel_environment,
    kill_tree,
    make_scratch,
    sandbox_command,
)

if TYPE_CHECKING:
    from nbformat import NotebookNode

MAX_OUTPUT_LINES = 1000
MAX_OUTPUT_CHARS = 100_000
MAX_TRACEBACK_LINES = 100
MAX_MESSAGE_BYTES = 64 * 2**20
INTERRUPT_GRACE = 5.0
OUTPUT_GRACE = 2.0
TIMEOUT_ERROR = ("CellTimeoutError", "the cell ran past its time limit and was interrupted")


class KernelDied(BaseException):
    """The kernel stopped (or was stopped) while the judge waited for it.  A ``BaseException``:
    no check may treat it as a wrong answer and go on."""


@dataclass
class CellRun:
    """What running one cell gave: ``status`` is ``ok``, ``error`` or ``timeout``;
    ``ename``/``evalue`` describe the error; ``outputs`` are nbformat outputs (capped)."""

    status: str
    ename: str = ""
    evalue: str = ""
    outputs: list = field(default_factory=list)


class Kernel:
    """An IPython kernel in its own process, in the sandbox when ``spec`` is given.

    Use it as a context manager; :attr:`problem` says why it stopped, when it did.
    """

    def __init__(self, *, spec: SandboxSpec | None = None, scratch: Path | None = None, cwd: Path | None = None,
                 environment: dict[str, str] | None = None, memory_mb: int = 0,
                 max_processes: int = DEFAULT_MAX_PROCESSES, data_root: Path | None = None,
                 library: Path | None = None, inherit_environment: bool = False) -> None:
        self.spec = spec
        self.scratch = spec.scratch if spec is not None else (scratch or make_scratch())
        self._own_scratch = spec is None and scratch is None
        self.cwd = cwd
        self.memory_mb = spec.memory_mb if spec is not None else memory_mb
        self.max_processes = spec.max_processes if spec is not None else max_processes
        self.environment = kernel_environment(
            sandboxed=spec is not None, data_root=spec.data_root if spec is not None else data_root,
            library="/course/library" if spec is not None else (str(library) if library else None),
            extra=environment)
        if spec is None:  # no sandbox: a home, and (for a student's own run) the whole environment
            self.environment["HOME"] = os.environ.get("HOME", str(self.scratch / "run"))
            self.environment["IPYTHONDIR"] = str(self.scratch / "ipython")
            if inherit_environment:
                self.environment = dict(os.environ) | self.environment
        self.problem = ""
        self.process: subprocess.Popen | None = None
        self.group: ResourceGroup | None = None
        self.watchdog: Watchdog | None = None
        self.client = None
        self._context = None
        self._poller = None

    # -- starting and stopping ---------------------------------------------------------------------

    def __enter__(self) -> "Kernel":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 120) -> None:
        """Start the kernel and wait until it answers (at most ``timeout`` seconds)."""
        self.launch()
        self.wait_until_ready(timeout)

    def launch(self) -> None:
        """Start the kernel's process (it then takes a moment to answer: :meth:`wait_until_ready`)."""
        import zmq
        from jupyter_client import BlockingKernelClient

        key = secrets.token_hex(16)
        ports = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}
        inside = {**ports, "transport": "ipc", "key": key, "signature_scheme": "hmac-sha256",
                  "ip": f"{SANDBOX_IPC}/kernel" if self.spec is not None else str(self.scratch / "ipc" / "kernel")}
        outside = dict(inside, ip=str(self.scratch / "ipc" / "kernel"))
        connection = self.scratch / "ipc" / "kernel.json"
        connection.write_text(json.dumps(inside))
        connection_inside = f"{SANDBOX_IPC}/kernel.json" if self.spec is not None else str(connection)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_inside,
                "--HistoryManager.enabled=False"]
        if self.spec is not None:
            argv = sandbox_command(argv, self.spec, self.environment)
            environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
            cwd = self.scratch / "run"
        else:
            environment = self.environment
            cwd = self.cwd or (self.scratch / "run")
        if self.memory_mb:
            argv = ["/bin/sh", "-c", f'ulimit -v {self.memory_mb * 1024} 2>/dev/null; exec "$@"', "sh", *argv]
        if self.spec is not None:
            self.group = ResourceGroup.create(self.memory_mb, self.max_processes)
            if self.group is not None:  # listed, so that the grader can remove it if this process is killed
                (self.scratch / "groups.json").write_text(json.dumps(
                    {"folders": [str(f) for f in self.group.folders], "version": self.group.version}))
                argv = self.group.wrap(argv)
        log = open(self.scratch / "kernel.log", "wb")
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=environment, cwd=cwd, start_new_session=True)
        log.close()
        if self.spec is not None and self.group is None:  # no cgroup here: watch the sandbox's processes
            self.watchdog = Watchdog(self.process.pid, self.memory_mb, self.max_processes).start()
        self._context = zmq.Context()
        self._context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        self.client = BlockingKernelClient(context=self._context)
        self.client.load_connection_info(outside)
        self.client.allow_stdin = False
        self.client.start_channels()
        self._poller = zmq.Poller()
        self._poller.register(self.client.shell_channel.socket, zmq.POLLIN)
        self._poller.register(self.client.iopub_channel.socket, zmq.POLLIN)

    def wait_until_ready(self, timeout: float = 120) -> None:
        """Wait until the launched kernel answers (at most ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                self.client.wait_for_ready(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    self._fail(f"the kernel did not start within {timeout:g} s: {self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None and not self._limit_reason()

    def stop(self) -> None:
        """Stop the kernel and every process in its sandbox; remove the scratch if it made it."""
        if self.client is not None:
            try:
                self.client.stop_channels()
            except Exception:  # already closed
                pass
            self.client = None
        if self.process is not None:
            kill_tree(self.process.pid)
            self.process.wait()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.group is not None:
            self.group.remove()
        if self._context is not None:
            self._context.destroy(linger=0)
            self._context = None
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def peak_memory_mb(self) -> float | None:
        if self.group is not None:
            return self.group.peak_memory_mb()
        return self.watchdog.peak_mb if self.watchdog is not None else None

    def log_tail(self, size: int = 600) -> str:
        try:
            return (self.scratch / "kernel.log").read_bytes()[-size:].decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def _limit_reason(self) -> str:
        if self.watchdog is not None and self.watchdog.reason:
            return self.watchdog.reason
        return ""

    def _check_alive(self) -> None:
        if self.problem:
            raise KernelDied(self.problem)
        if self.process is None or self.process.poll() is not None or self._limit_reason():
            self._fail(self._death_reason())

    def _death_reason(self) -> str:
        reason = self._limit_reason()
        if reason:
            return f"the notebook was stopped: {reason}"
        if self.group is not None and self.group.ran_out_of_memory():
            return (f"the kernel died: its processes needed more than the memory limit of {self.memory_mb} MB "
                    "together")
        if self.group is not None and self.group.hit_process_limit():
            return (f"the kernel died after trying to start more than {self.max_processes} processes and threads")
        return "the kernel died (out of memory, a crash, or os._exit)"

    def _fail(self, problem: str) -> None:
        self.problem = problem
        if self.process is not None:
            kill_tree(self.process.pid)
        raise KernelDied(problem)

    # -- running code --------------------------------------------------------------------------------

    def execute(self, code: str, timeout: float, *, silent: bool = False) -> CellRun:
        """Run ``code`` in the kernel; at most ``timeout`` seconds, then interrupt.

        Raises:
            KernelDied: the kernel is gone, or did not stop when interrupted (then it is killed).
        """
        self._check_alive()
        message_id = self.client.execute(code, silent=silent, store_history=not silent, allow_stdin=False,
                                         stop_on_error=False)
        collector = _Outputs()
        deadline = time.monotonic() + timeout
        reply, idle, interrupted, settled = None, False, False, float("inf")
        while reply is None or (not idle and time.monotonic() < settled):
            now = time.monotonic()
            if reply is None and now > deadline:
                if interrupted:
                    self._fail(f"a cell ran past its time limit of {timeout:g} s and did not stop when interrupted; "
                               "the kernel was killed")
                self._interrupt()
                interrupted, deadline = True, now + INTERRUPT_GRACE
            self._check_alive()
            self._poller.poll(100)  # wakes as soon as either channel has a message
            if reply is None:
                reply = self._read_reply(message_id)
                if reply is not None:  # the cell is done: its last outputs get a moment, not forever
                    settled = time.monotonic() + OUTPUT_GRACE
            idle = self._read_iopub(message_id, collector, idle)
        content = reply["content"]
        if interrupted:
            return CellRun("timeout", *TIMEOUT_ERROR, collector.outputs + [_error_output(*TIMEOUT_ERROR, [])])
        if content.get("status") == "ok":
            return CellRun("ok", outputs=collector.outputs)
        return CellRun("error", str(content.get("ename", "Error"))[:200], str(content.get("evalue", ""))[:4000],
                       collector.outputs)

    def _read_iopub(self, message_id: str, collector: "_Outputs", idle: bool) -> bool:
        """Take every message waiting on IOPub (at most 1000 at a time); True once the cell is idle."""
        for _ in range(1000):
            try:
                message = self.client.get_iopub_msg(timeout=0)
            except queue.Empty:
                return idle
            if message.get("parent_header", {}).get("msg_id") != message_id:
                continue
            kind, content = message.get("msg_type"), message.get("content", {})
            if kind == "status":
                idle = idle or content.get("execution_state") == "idle"
            else:
                collector.add(kind, content)
        return idle

    def _read_reply(self, message_id: str) -> dict | None:
        while True:
            try:
                message = self.client.get_shell_msg(timeout=0)
            except queue.Empty:
                return None
            if message.get("parent_header", {}).get("msg_id") == message_id:
                return message

    def _interrupt(self) -> None:
        message = self.client.session.msg("interrupt_request", {})
        self.client.control_channel.send(message)


class _Outputs:
    """Outputs of one cell, capped (stream text by lines and characters; at most 100 outputs)."""

    def __init__(self) -> None:
        self.outputs: list = []
        self.lines_left, self.chars_left = MAX_OUTPUT_LINES, MAX_OUTPUT_CHARS
        self.truncated = False

    def add(self, kind: str, content: dict) -> None:
        if kind == "stream":
            text = str(content.get("text", ""))
            if self.lines_left <= 0 or self.chars_left <= 0:
                self._truncate()
                return
            lines = text.split("\n")
            if len(lines) > self.lines_left or len(text) > self.chars_left:
                text = "\n".join(lines[: self.lines_left])[: self.chars_left]
                self.lines_left = self.chars_left = 0
                self.outputs.append(_stream(str(content.get("name", "stdout")), text))
                self._truncate()
                return
            self.lines_left -= text.count("\n")
            self.chars_left -= len(text)
            self.outputs.append(_stream(str(content.get("name", "stdout")), text))
        elif kind == "error":
            traceback = [str(line)[:2000] for line in content.get("traceback", [])]
            if len(traceback) > MAX_TRACEBACK_LINES:
                half = MAX_TRACEBACK_LINES // 2
                traceback = traceback[:half] + ["... traceback truncated ..."] + traceback[-half:]
            self.outputs.append(_error_output(str(content.get("ename", "Error"))[:200],
                                              str(content.get("evalue", ""))[:4000], traceback))
        elif kind in ("display_data", "execute_result") and len(self.outputs) < 100:
            data = {mime: value for mime, value in content.get("data", {}).items()
                    if mime == "text/plain" and isinstance(value, str) and len(value) < 10_000}
            if data:
                self.outputs.append({"output_type": "display_data", "data": data, "metadata": {}})

    def _truncate(self) -> None:
        if not self.truncated:
            self.truncated = True
            self.outputs.append(_stream("stderr", "\n... output truncated ...\n"))


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _error_output(ename: str, evalue: str, traceback: list) -> dict:
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": traceback}


# -- running a whole notebook -----------------------------------------------------------------------------

@dataclass
class ExecutionResult:
    """What came back from :func:`execute_notebook`: the notebook with each code cell's outputs and
    ``cell.metadata["grading"]["reply"]`` (``ok`` / ``error``, missing if it never ran), and
    ``problem`` (``""`` when every cell ran)."""

    notebook: "NotebookNode"
    problem: str


def execute_notebook(
    nb: "NotebookNode",
    *,
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 0,
    cwd: str | Path | None = None,
    environment: dict[str, str] | None = None,
) -> ExecutionResult:
    """Run every code cell of a copy of ``nb`` in a fresh kernel (no sandbox: this is for a
    student's own notebook, e.g. ``validate``), with time limits per cell and for the whole run."""
    import nbformat

    from course_lib.validation import check_positive

    timeout_cell = check_positive(timeout_cell, "timeout_cell")
    timeout_notebook = check_positive(timeout_notebook, "timeout_notebook")
    memory_mb = int(check_positive(memory_mb, "memory_mb", allow_zero=True))
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    deadline = time.monotonic() + timeout_notebook
    problem = ""
    with Kernel(cwd=Path(cwd).resolve() if cwd is not None else None, memory_mb=memory_mb,
                environment=environment, inherit_environment=True) as kernel:
        try:
            kernel.start(timeout=min(120, timeout_notebook))
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    problem = f"stopped after {timeout_notebook:g} s, the time limit for the whole notebook"
                    break
                run = kernel.execute(cell.source, min(timeout_cell, left))
                cell.outputs = [nbformat.from_dict(output) for output in run.outputs]
                cell.metadata["grading"] = {"reply": "ok" if run.status == "ok" else "error"}
        except KernelDied as died:
            problem = str(died)
    return ExecutionResult(nb, problem)
