"""The judge: runs a submitted notebook in its sandboxed kernel and grades it from outside.

One judge process grades one notebook (``python -m course_lib.grading.judge PLAN.json``; the
grader writes the plan, :func:`course_lib.grading.grade.grade_notebook` starts it)::

    grader ── judge (trusted: the check modules, the hidden tests) ── results.jsonl
                 │   plain data only (course_lib.grading.channel)
                 └── kernel in bubblewrap (untrusted: the student's cells)

The judge walks through the notebook's cells in order:

* a student's code cell (answers included) runs in the kernel, with the cell time limit;
* visible checks do not run (they are for the student; grading runs the graded cells);
* at an exercise's **graded cell** the judge runs that cell's code, taken from the instructor's
  source, in its own process: ``checks`` is the chapter's check module and the exercise's
  name is a :class:`RemoteFunction` that calls the student's function in the kernel.
  Whatever student code did to ``checks``, to IPython or to the kernel's modules changes
  nothing the judge runs; the kernel can only answer calls, with data.
  The result is appended to ``results.jsonl`` at once, so points earned stay earned whatever
  happens later (a crash, a loop, the kernel killed at the notebook's time limit);
* exercises are judged in the source's order (one the student moved later is judged when the
  next one is due), and after each, the course's own code of that exercise is put back into
  the kernel (``remote.restore``) unless a later exercise still forbids it.

Only messages from the check modules reach the student, never the hidden tests' code.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import re
import secrets
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_lib.grading import channel
from course_lib.grading.checks import CheckFailed, ReferenceCalled
from course_lib.grading.kernel import Kernel, KernelDied
from course_lib.grading.sandbox import SandboxSpec

PASSED, FAILED, NOT_RUN = "passed", "failed", "not run"
MAX_RESPONSE_BYTES = 64 * 2**20
TIME_LIMIT_MESSAGE = "the graded cell ran past the time limit for one cell and was stopped"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SERVE = ("__import__('course_lib.grading.remote', fromlist=['serve']).serve({request!r}, {response!r})")


class RemoteTimeout(BaseException):
    """A call into the kernel ran past the exercise's time limit (the kernel was interrupted)."""


class RemoteError(Exception):
    """An exception raised by the student's code in the kernel; subclasses carry its type's name."""


def remote_error(type_name: str, message: str) -> RemoteError:
    """An exception whose class is named like the student's (``ValueError``...), for messages."""
    if type_name == "NotImplementedError":
        return NotImplementedError(message)  # call_student turns it into "not written yet"
    name = type_name if re.fullmatch(r"[A-Za-z_]\w{0,60}", type_name or "") else "Error"
    return type(name, (RemoteError,), {})(message)


# -- calling the student's code ------------------------------------------------------------------------

class Session:
    """The judge's end of the channel to one kernel: requests as files, answers as files."""

    def __init__(self, kernel: Kernel, exchange_outside: Path, exchange_inside: str) -> None:
        self.kernel, self.outside, self.inside = kernel, exchange_outside, exchange_inside
        self.deadline = float("inf")

    def request(self, body: dict) -> dict:
        """Send one request; return the kernel's answer (a dict read with :func:`channel.loads`)."""
        token = secrets.token_hex(8)
        request_file, response_file = f"request-{token}.json", f"response-{token}.json"
        (self.outside / request_file).write_text(json.dumps(dict(body, id=token), allow_nan=True))
        code = _SERVE.format(request=f"{self.inside}/{request_file}", response=f"{self.inside}/{response_file}")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise RemoteTimeout()
        try:
            run = self.kernel.execute(code, left, silent=True)
        finally:
            (self.outside / request_file).unlink(missing_ok=True)
        if run.status == "timeout":
            raise RemoteTimeout()
        path = self.outside / response_file
        try:
            if run.status != "ok" or not path.is_file():
                raise RemoteError(f"the grader could not call into the notebook ({run.ename}: {run.evalue[:300]})"
                                  if run.status != "ok" else "the notebook gave no answer to the grader's call")
            if path.stat().st_size > MAX_RESPONSE_BYTES:
                raise RemoteError(f"the answer has more than {MAX_RESPONSE_BYTES // 2**20} MB")
            answer = json.loads(path.read_bytes())
        except (ValueError, RecursionError) as error:
            raise RemoteError(f"the grader could not read the answer: {str(error)[:200]}") from None
        finally:
            path.unlink(missing_ok=True)
        if not isinstance(answer, dict) or answer.get("id") != token:
            raise RemoteError("the answer to the grader's call was not the one it asked for")
        return answer


def _decode(data: Any) -> Any:
    return channel.decode(data) if data is not None else None


class _Remote:
    def __init__(self, session: Session, target: dict, name: str) -> None:
        self._session, self._target, self.__name__ = session, target, name

    def _call(self, method: str | None, args: tuple, kwargs: dict, *, gradients: bool = False) -> Any:
        answer = self._session.request({"op": "call", "target": self._target, "method": method,
                                        "args": channel.encode(list(args), allow_code=True),
                                        "kwargs": channel.encode(dict(kwargs), allow_code=True),
                                        "gradients": gradients})
        self.last_gradients = answer.get("gradients")
        if "reference" in answer:
            raise ReferenceCalled(str(answer["reference"])[:200])
        if "error" in answer:
            error = answer["error"] if isinstance(answer["error"], dict) else {}
            raise remote_error(str(error.get("type", "Error")), str(error.get("message", ""))[:4000])
        try:
            _write_back(args, _decode(answer.get("args")))
            _write_back(kwargs, _decode(answer.get("kwargs")))
            if "handle" in answer:
                handle = answer["handle"]
                return RemoteModule(self._session, int(handle["id"]), channel.decode(handle["summary"]))
            return channel.decode(answer.get("ok"))
        except (channel.ChannelError, KeyError, TypeError, ValueError) as error:
            raise RemoteError(f"the grader could not read what {self.__name__} returned: {error}") from None


class RemoteFunction(_Remote):
    """A student's function, called from the judge: arguments go to the kernel as data, the
    result comes back as data (an ``nn.Module`` comes back as a :class:`RemoteModule`).

    Inputs the function changed in place are written back into the judge's copies, so
    ``call_student`` still sees them; an exception in the kernel is raised here with its type's
    name; a call to a course function that answers the exercise raises
    :class:`~course_lib.grading.checks.ReferenceCalled`.
    """

    def __init__(self, session: Session, name: str, parameters: list[str] | None = None) -> None:
        super().__init__(session, {"name": name}, name)
        if parameters is not None:
            self.__signature__ = inspect.Signature(
                [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in parameters])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(None, args, kwargs)

    def call_with_gradients(self, *args: Any) -> tuple[Any, list]:
        """The result, and the gradients of the tensor inputs after a backward pass from it (run in
        the kernel): what :func:`~course_lib.grading.checks.gradients_through` needs."""
        result = self._call(None, args, {}, gradients=True)
        try:
            gradients = channel.decode(self.last_gradients)
        except channel.ChannelError as error:
            raise RemoteError(f"the grader could not read the gradients: {error}") from None
        if not isinstance(gradients, list):
            raise RemoteError("the gradients did not come back")
        return result, gradients

    def __repr__(self) -> str:
        return f"<the notebook's {self.__name__}>"


class RemoteModule(_Remote):
    """An ``nn.Module`` that a student's code made, left in the kernel: ``remote_summary`` (class,
    parameter count, weight shapes, children, attributes), calls with ``module(x)``, and
    :meth:`call_method` for anything else (``load_state_dict``, ``eval``)."""

    def __init__(self, session: Session, handle: int, summary: dict) -> None:
        super().__init__(session, {"handle": handle}, str(summary.get("class", "module")).rsplit(".", 1)[-1])
        self.remote_summary = summary

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("__call__", args, kwargs)

    def call_method(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._call(method, args, kwargs)

    def __repr__(self) -> str:
        return f"<the notebook's {self.remote_summary.get('class', 'module')} object>"


def _write_back(before: Any, after: Any) -> None:
    """Copy what the kernel's call did to its inputs into the judge's copies (same shapes only)."""
    if after is None:
        return
    torch = sys.modules.get("torch")
    if isinstance(before, (list, tuple)) and isinstance(after, (list, tuple)) and len(before) == len(after):
        for index, (old, new) in enumerate(zip(before, after)):
            if isinstance(before, list) and type(old) in (int, float, str, bool, type(None)) and old != new:
                before[index] = new
            else:
                _write_back(old, new)
    elif isinstance(before, dict) and isinstance(after, dict):
        for key in list(before):
            if key in after:
                if type(before[key]) in (int, float, str, bool, type(None)):
                    before[key] = after[key]
                else:
                    _write_back(before[key], after[key])
    elif hasattr(before, "shape") and hasattr(after, "shape") and tuple(before.shape) == tuple(after.shape):
        if torch is not None and isinstance(before, torch.Tensor) and isinstance(after, torch.Tensor):
            with torch.no_grad():
                before.copy_(after.to(before.dtype))
        elif not (torch is not None and isinstance(before, torch.Tensor)) and hasattr(before, "flags"):
            if before.flags.writeable and before.dtype == getattr(after, "dtype", None):
                before[...] = after


# -- the plan and the run -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ExercisePlan:
    """What the judge needs of one exercise (from the instructor's source)."""

    name: str
    points: float
    tests_id: str
    check_ids: tuple[str, ...]
    graded_source: str  # the graded cell's code, hidden tests included
    forbidden: tuple[tuple[str, str, str], ...]  # (module, qualname, source) of the course's answers


def run_plan(plan: dict) -> None:
    """Grade the notebook described by ``plan`` (see :func:`course_lib.grading.grade.grade_notebook`),
    appending one line per exercise to ``plan["results"]`` and a last line with the problem."""
    results = Path(plan["results"])
    exercises = [ExercisePlan(e["name"], float(e["points"]), e["tests_id"], tuple(e["check_ids"]),
                              e["graded_source"], tuple(tuple(f) for f in e["forbidden"]))
                 for e in plan["exercises"]]
    spec = None
    if plan.get("sandbox"):
        box = plan["sandbox"]
        spec = SandboxSpec(library=Path(box["library"]), scratch=Path(box["scratch"]),
                           data_root=Path(box["data_root"]) if box.get("data_root") else None,
                           memory_mb=int(plan["memory_mb"]), max_processes=int(plan["max_processes"]))
    nb = json.loads(Path(plan["notebook"]).read_text(encoding="utf-8"))  # written by the grader
    deadline = time.monotonic() + float(plan["timeout_notebook"])
    kernel = Kernel(spec=spec, scratch=Path(plan["scratch"]) if spec is None else None,
                    memory_mb=int(plan["memory_mb"]), max_processes=int(plan["max_processes"]),
                    data_root=Path(plan["data_root"]) if plan.get("data_root") else None,
                    library=Path(plan["library"]) if spec is None and plan.get("library") else None,
                    environment=plan.get("environment", {}))
    judge = Judge(kernel, exercises, plan["check_module"], results, float(plan["timeout_cell"]), deadline,
                  sandboxed=spec is not None)
    with kernel:
        judge.run(nb)


class Judge:
    """Walks the notebook's cells, running the student's and judging the graded ones."""

    def __init__(self, kernel: Kernel, exercises: list[ExercisePlan], check_module: str, results: Path,
                 timeout_cell: float, deadline: float, *, sandboxed: bool) -> None:
        self.kernel, self.exercises, self.results = kernel, exercises, results
        self.check_module_name = check_module
        self.timeout_cell, self.deadline = timeout_cell, deadline
        inside = "/grading/ipc" if sandboxed else str(kernel.scratch / "ipc")
        self.session = Session(kernel, kernel.scratch / "ipc", inside)
        self.judged: set[str] = set()
        self.problem = ""

    def run(self, nb: dict) -> None:
        try:
            self.kernel.launch()
            self.checks = importlib.import_module(self.check_module_name)  # while the kernel starts
            self.kernel.wait_until_ready(timeout=min(120.0, max(1.0, self.deadline - time.monotonic())))
            by_tests = {e.tests_id: e for e in self.exercises}
            visible = {cell_id for e in self.exercises for cell_id in e.check_ids}
            for cell in nb["cells"]:
                if cell["cell_type"] != "code":
                    continue
                grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
                source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                if grade_id in by_tests:
                    self._judge_up_to(by_tests[grade_id])
                elif grade_id not in visible:
                    self._run_cell(source)
            self._judge_up_to(None)
        except KernelDied as died:
            self.problem = str(died)
        except _OutOfTime:
            self.problem = "stopped at the time limit for the whole notebook"
        self._write({"problem": self.problem, "peak_memory_mb": self.kernel.peak_memory_mb()})

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime()
        return left

    def _run_cell(self, code: str) -> None:
        self.kernel.execute(code, min(self.timeout_cell, self._left()))

    def _judge_up_to(self, exercise: ExercisePlan | None) -> None:
        for pending in self.exercises:
            if pending.name in self.judged:
                continue
            self._judge(pending)
            if pending is exercise:
                return

    def _judge(self, exercise: ExercisePlan) -> None:
        self.judged.add(exercise.name)
        self.session.deadline = time.monotonic() + min(self.timeout_cell, self._left())
        status, message = PASSED, ""
        try:
            parameters = self._parameters(exercise.name)
            namespace = {"checks": self.checks, exercise.name: RemoteFunction(self.session, exercise.name, parameters)}
            with _quiet():
                exec(compile(exercise.graded_source, f"<graded cell of {exercise.name}>", "exec"), namespace)
        except CheckFailed as failure:
            status, message = FAILED, str(failure)
        except ReferenceCalled as called:
            status, message = FAILED, (f"{exercise.name} calls the course's reference implementation {called.args[0]}: "
                                       "the exercise is to write it yourself, without it.")
        except RemoteTimeout:
            status, message = FAILED, TIME_LIMIT_MESSAGE
        except KernelDied as died:
            self._record(exercise, FAILED, f"{exercise.name} stopped the kernel: {died}")
            raise
        except NotImplementedError:
            status, message = FAILED, "not written yet: the function still raises NotImplementedError"
        except RemoteError as error:
            status, message = FAILED, f"{type(error).__name__}: {error}"
        except Exception as error:  # the check itself failed on what the function returned
            status, message = FAILED, f"{type(error).__name__}: {error}"
        self._record(exercise, status, message)
        self._restore(exercise)

    def _parameters(self, name: str) -> list[str] | None:
        """The parameter names of the student's function (for the check's messages), if it has one."""
        try:
            answer = self.session.request({"op": "describe", "target": {"name": name}})
            summary = channel.decode(answer["ok"]) if "ok" in answer else {}
        except (RemoteError, channel.ChannelError):
            return None  # the names only make messages nicer; the calls will say what is wrong
        names = summary.get("parameters_of") if isinstance(summary, dict) else None
        return [str(n) for n in names] if isinstance(names, list) else None

    def _restore(self, exercise: ExercisePlan) -> None:
        later = {(m, q) for e in self.exercises if e.name not in self.judged for m, q, _ in e.forbidden}
        functions = [[m, q, s] for m, q, s in exercise.forbidden if (m, q) not in later]
        if not functions or not self.kernel.alive():
            return
        self.session.deadline = time.monotonic() + 60
        try:
            self.session.request({"op": "restore", "functions": functions})
        except (RemoteError, RemoteTimeout):
            pass  # the student's later cells then meet the stub: their problem, not the grade's

    def _record(self, exercise: ExercisePlan, status: str, message: str) -> None:
        self._write({"exercise": exercise.name, "status": status,
                     "points": exercise.points if status == PASSED else 0.0,
                     "message": _ANSI.sub("", message)[:4000]})

    def _write(self, line: dict) -> None:
        with open(self.results, "a", encoding="utf-8") as file:
            file.write(json.dumps(line) + "\n")
            file.flush()
            os.fsync(file.fileno())


class _OutOfTime(Exception):
    pass


class _quiet:
    """Checks print "all checks passed"; the judge has no one to tell."""

    def __enter__(self) -> None:
        self.saved = sys.stdout
        sys.stdout = open(os.devnull, "w")

    def __exit__(self, *exc) -> None:
        sys.stdout.close()
        sys.stdout = self.saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.grading.judge",
                                     description="Grade one notebook (started by the grader; see the module docstring).")
    parser.add_argument("plan", type=Path)
    args = parser.parse_args(argv)
    try:
        run_plan(json.loads(args.plan.read_text()))
    except Exception:  # the grader reads the results so far and this message
        traceback.print_exc()
        sys.exit(1)


if __name__ == "__main__":
    main()
