"""Running one notebook in its own kernel, with a time limit per cell, a time limit for the whole
notebook and a memory limit.

How it is isolated::

    grader process
      └─ worker:  python -m course_lib.grading.sandbox IN OUT ...   (own session; memory limit)
           └─ kernel: the grader's own Python running ipykernel      (inherits the memory limit)

* The **worker** sets ``RLIMIT_AS`` (address space) on itself before starting anything; the
  kernel it starts inherits it, so each of the two processes may use at most ``memory_mb``.
  A student's allocation beyond it fails with ``MemoryError`` (or kills the kernel), not the
  machine.  ``import torch`` needs about 0.8 GB of address space; the default 4096 MB leaves
  room for small models.  (Linux enforces ``RLIMIT_AS``; macOS ignores it.)
* The worker runs the cells with nbclient (what nbgrader's own autograder uses): a cell that
  runs longer than ``timeout_cell`` seconds is interrupted and counts as an error, and the
  next cell runs.  ``sys.exit`` in a cell is an ordinary error; ``os._exit`` or a crash kills
  the kernel, and the cells after it are reported as not run.
* The grader waits at most ``timeout_notebook`` seconds for the worker; past that it kills
  the worker and every process under it (a kernel that ignores interrupts included; the
  processes are found in ``/proc`` on Linux).
* Every notebook runs in a scratch folder with ``OMP_NUM_THREADS=1`` (fair when several
  notebooks run at once, and reproducible), ``MPLBACKEND=Agg`` and a private IPython profile.
* Each executed code cell records the kernel's reply in ``cell.metadata["grading"]["reply"]``
  (``"ok"`` or ``"error"``); stream outputs are cut to :data:`MAX_OUTPUT_LINES` lines and
  :data:`MAX_OUTPUT_CHARS` characters per cell, so a notebook that prints megabytes stays small.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

MAX_OUTPUT_LINES = 1000
MAX_OUTPUT_CHARS = 100_000
MAX_TRACEBACK_LINES = 100
_TIMEOUT_ERROR = {
    "ename": "CellTimeoutError",
    "evalue": "the cell ran past its time limit and was interrupted",
    "traceback": ["CellTimeoutError: the cell ran past its time limit and was interrupted"],
}


@dataclass
class ExecutionResult:
    """What came back from running a notebook.

    ``notebook`` holds the executed cells (partly executed if the kernel died; ``None`` if the
    worker did not finish: stopped at the time limit, or killed).  ``problem`` is ``""`` when every cell
    ran, else one sentence saying what went wrong.
    """

    notebook: NotebookNode | None
    problem: str


def execute_notebook(
    nb: NotebookNode,
    *,
    timeout_cell: float = 120,
    timeout_notebook: float = 900,
    memory_mb: int = 4096,
    cwd: str | Path | None = None,
    environment: dict[str, str] | None = None,
) -> ExecutionResult:
    """Run every code cell of ``nb`` in a fresh kernel in a worker process with limits.

    Args:
        nb: the notebook to run (not modified).
        timeout_cell: seconds one cell may run before it is interrupted.
        timeout_notebook: seconds the whole run may take before everything is killed.
        memory_mb: address-space limit of the worker and of the kernel, in MB (0: none).
        cwd: the kernel's working folder (default: a scratch folder, deleted afterwards).
        environment: variables to set for the worker and the kernel, on top of the grader's
            own and the fixed ones below (e.g. ``{"COURSE_FAST": "1"}``).
    """
    from course_lib.validation import check_positive

    timeout_cell = check_positive(timeout_cell, "timeout_cell")
    timeout_notebook = check_positive(timeout_notebook, "timeout_notebook")
    memory_mb = int(check_positive(memory_mb, "memory_mb", allow_zero=True))
    with tempfile.TemporaryDirectory(prefix="pose-course-grading-") as scratch:
        scratch = Path(scratch)
        (scratch / "run").mkdir()
        source, executed, status = scratch / "in.ipynb", scratch / "out.ipynb", scratch / "status.json"
        nbformat.write(nb, source)
        command = [
            sys.executable, "-m", "course_lib.grading.sandbox", str(source), str(executed), str(status),
            "--timeout-cell", str(timeout_cell), "--memory-mb", str(memory_mb),
            "--cwd", str(Path(cwd).resolve() if cwd is not None else scratch / "run"),
        ]
        with open(scratch / "worker.log", "wb") as log:
            worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=_environment(scratch, environment or {}), cwd=scratch / "run",
                                      start_new_session=True)
            try:
                worker.wait(timeout=timeout_notebook)
            except subprocess.TimeoutExpired:
                _kill_process_tree(worker)
                return ExecutionResult(None, f"stopped after {timeout_notebook:g} s, the time limit for the "
                                             "whole notebook")
        # Only a worker that finished wrote the results (student code could write files there too).
        if worker.returncode != 0 or not status.exists():
            log_tail = (scratch / "worker.log").read_bytes()[-600:].decode("utf-8", "replace").strip()
            return ExecutionResult(None, f"the notebook runner stopped (exit code {worker.returncode}): "
                                         f"{log_tail or 'no message'}")
        return ExecutionResult(nbformat.read(executed, as_version=4), json.loads(status.read_text())["problem"])


def _environment(scratch: Path, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ) | extra
    env.update(
        MPLBACKEND="Agg",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
        IPYTHONDIR=str(scratch / "ipython"),
        NBGRADER_EXECUTION="autograde",
    )
    return env


def _kill_process_tree(process: subprocess.Popen) -> None:
    """Kill the worker and every process below it (the kernel runs in a session of its own).

    The descendants are found in ``/proc`` (Linux).  Elsewhere only the worker is killed, and
    ipykernel's parent poller ends the kernel when it sees its parent gone.
    """
    descendants = _descendants(process.pid)
    process.kill()
    for pid in descendants:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
    process.wait()


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # field 4: the parent's pid
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


# -- the worker (runs in its own process) ---------------------------------------------------------

def limit_memory(memory_mb: int) -> None:
    """Limit this process (and the processes it starts) to ``memory_mb`` MB of address space."""
    try:
        import resource
    except ImportError:  # Windows: no limit
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_mb > 0:
        limit = memory_mb * 2**20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _kernel_manager_class():
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class GraderKernelManager(AsyncKernelManager):
        """Always starts this Python's ipykernel, whatever kernel the notebook names."""

        @property
        def kernel_spec(self) -> KernelSpec:
            if self._kernel_spec is None:
                self._kernel_spec = KernelSpec(
                    argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    display_name="grader", language="python")
            return self._kernel_spec

    return GraderKernelManager


def record_reply(cell: NotebookNode, cell_index: int, execute_reply: dict) -> None:
    """nbclient hook: remember whether the kernel said the cell succeeded."""
    content = execute_reply.get("content", {})
    status = "ok" if content.get("status") == "ok" else "error"
    cell.metadata["grading"] = {"reply": status}
    if status == "error" and not any(output.output_type == "error" for output in cell.outputs):
        # a timeout: nbclient made the reply up and no error output came from the kernel
        cell.outputs.append(nbformat.v4.new_output(
            "error", ename=content.get("ename", "Error"), evalue=content.get("evalue", ""),
            traceback=list(content.get("traceback", []))))


def limit_outputs(nb: NotebookNode) -> None:
    """Cut stream outputs to MAX_OUTPUT_LINES lines / MAX_OUTPUT_CHARS characters per cell, and
    tracebacks to MAX_TRACEBACK_LINES lines."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines_left, chars_left, kept = MAX_OUTPUT_LINES, MAX_OUTPUT_CHARS, []
        for output in cell.outputs:
            if output.output_type == "stream":
                if lines_left <= 0 or chars_left <= 0:
                    continue
                text = output.text
                lines = text.split("\n")
                if len(lines) > lines_left or len(text) > chars_left:
                    text = "\n".join(lines[: lines_left - 1])[:chars_left] + "\n... output truncated ..."
                lines_left -= text.count("\n") + 1
                chars_left -= len(text)
                output.text = text
            elif output.output_type == "error" and len(output.traceback) > MAX_TRACEBACK_LINES:
                half = MAX_TRACEBACK_LINES // 2
                output.traceback = output.traceback[:half] + ["... traceback truncated ..."] + output.traceback[-half:]
            kept.append(output)
        cell.outputs = kept


def _run_worker(source: Path, executed: Path, status: Path, timeout_cell: float, memory_mb: int, cwd: Path) -> None:
    limit_memory(memory_mb)
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.read(source, as_version=4)
    client = NotebookClient(
        nb,
        timeout=max(1, round(timeout_cell)),
        startup_timeout=120,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout=_TIMEOUT_ERROR,
        raise_on_iopub_timeout=False,
        kernel_manager_class=_kernel_manager_class(),
        kernel_name="python3",  # an IPython kernel: nbclient keeps its history in memory
        resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=record_reply,
        record_timing=False,
        shutdown_kernel="immediate",
    )
    problem = ""
    try:
        client.execute()
    except DeadKernelError:
        problem = "the kernel died (out of memory, a crash, or os._exit): the cells after that did not run"
    except MemoryError:
        problem = "the notebook's output did not fit in the memory limit"
    except Exception as error:  # the kernel did not start, a message got lost, ...
        problem = f"the run stopped early: {type(error).__name__}: {str(error)[:300]}"
    limit_outputs(nb)
    nbformat.write(nb, executed)
    status.write_text(json.dumps({"problem": problem}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.sandbox",
                                     description="Run one notebook (used by the grader; see the module docstring).")
    parser.add_argument("source", type=Path)
    parser.add_argument("executed", type=Path)
    parser.add_argument("status", type=Path)
    parser.add_argument("--timeout-cell", type=float, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cwd", type=Path, required=True)
    args = parser.parse_args(argv)
    _run_worker(args.source, args.executed, args.status, args.timeout_cell, args.memory_mb, args.cwd)


if __name__ == "__main__":
    main()
