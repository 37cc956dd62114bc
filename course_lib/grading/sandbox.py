"""The sandbox a submitted notebook's kernel runs in: bubblewrap, one memory budget, a process cap.

What a kernel started with :func:`sandbox_command` sees and may do::

    /usr, /bin, /lib*, a few files of /etc    read-only   (the system: programs and libraries)
    Python and the virtual environment        read-only   (at their own paths)
    /course/library                           read-only   the grading library (see ``edition``):
                                                          no hidden tests, and the course's answers
                                                          to this notebook's exercises stubbed out
    the course data (COURSE_DATA)             read-only
    /grading/run                              writable    its working folder (the scratch)
    /grading/ipc                              writable    the kernel's sockets, the judge's requests
    /tmp, /dev/shm                            writable    in memory, counted in the memory budget
    anything else (solutions/, tests/, the    absent
    repository, the gradebook, your home)

It runs as an unprivileged user in its own user, mount, PID, network, IPC and UTS namespaces
(`bubblewrap <https://github.com/containers/bubblewrap>`_, the sandbox Flatpak uses): no
network at all (not even the host's loopback), no capabilities, no view of other processes,
an environment holding only the variables listed in :func:`kernel_environment`.  It dies with
the process that started it, and when its first process exits every process left in it is
killed by the kernel (the PID namespace goes away), detached daemons included.

**Memory and processes** are limited for the whole sandbox, over all its processes
(:class:`ResourceGroup`): a cgroup (v2, or v1's ``memory`` and ``pids`` controllers) where the
machine lets the grader make one, with ``memory_mb`` and ``max_processes`` as hard limits, and
at most one CPU's worth of time (so that a fork bomb cannot starve the notebooks graded beside
it, nor the judge); where
it does not, a watchdog (:class:`Watchdog`) sums the memory of every process in the sandbox
(their proportional set size) five times a second and stops the sandbox past the limit.  Each
process also gets ``RLIMIT_AS`` = ``memory_mb``, so one big allocation fails with
``MemoryError`` instead of the whole sandbox being stopped.

Where bubblewrap is missing (macOS) or cannot make namespaces, :func:`bubblewrap_problem` says
why, and grading refuses unless the instructor passes ``--no-sandbox``.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_LIBRARY = "/course/library"
SANDBOX_RUN = "/grading/run"
SANDBOX_IPC = "/grading/ipc"
SANDBOX_UID = 1000
DEFAULT_MAX_PROCESSES = 256  # threads count too (a kernel alone runs about 10)
CPU_PERIOD_US = 100_000
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd",
                 "/etc/group", "/etc/nsswitch.conf", "/etc/alternatives")


@dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed kernel gets: its library, the data, its scratch folders, its limits."""

    library: Path  # the grading library, mounted at /course/library
    scratch: Path  # host folder holding run/ and ipc/
    data_root: Path | None = None  # the course data, read-only at its own path
    memory_mb: int = 4096  # 0: no limit
    max_processes: int = DEFAULT_MAX_PROCESSES
    tmp_mb: int = 512  # size of /tmp and of /dev/shm (in memory, within memory_mb)


def bubblewrap_problem() -> str:
    """``""`` if bubblewrap can make a sandbox here, else why not and what to do (one paragraph)."""
    return _bubblewrap_problem(shutil.which("bwrap") or "")


@functools.lru_cache(maxsize=None)
def _bubblewrap_problem(path: str) -> str:
    if not path:
        return ("bubblewrap (`bwrap`) is not installed. Install it (Debian/Ubuntu: `sudo apt-get install "
                "bubblewrap`; Fedora: `sudo dnf install bubblewrap`), or grade with --no-sandbox, which runs "
                "student code as you, with your files and your network (see the README).")
    try:
        probe = subprocess.run([path, *_namespace_flags(), "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
                                "--", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bubblewrap could not be started ({error}); grade with --no-sandbox or fix the installation."
    if probe.returncode != 0:
        return (f"bubblewrap cannot make a sandbox on this machine: {probe.stderr.strip()[:300]}. User "
                "namespaces may be disabled (on Ubuntu 24.04: `sudo sysctl -w "
                "kernel.apparmor_restrict_unprivileged_userns=0`, or an AppArmor profile for bwrap); or grade with "
                "--no-sandbox.")
    return ""


def _namespace_flags() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]


def sandbox_command(argv: list[str], spec: SandboxSpec, environment: dict[str, str]) -> list[str]:
    """The bubblewrap command line that runs ``argv`` in the sandbox described in the module
    docstring, with exactly ``environment`` as its environment."""
    # the private /tmp first: a virtual environment or data under the host's /tmp is bound on top of it
    command = ["bwrap", *_namespace_flags(), "--size", str(spec.tmp_mb * 2**20), "--tmpfs", "/tmp"]
    for directory in _SYSTEM_DIRS:
        if os.path.islink(directory):
            command += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            command += ["--ro-bind", directory, directory]
    for path in _SYSTEM_FILES:
        command += ["--ro-bind-try", path, path]
    for path in python_paths():
        command += ["--ro-bind", str(path), str(path)]
    command += ["--ro-bind", str(spec.library), SANDBOX_LIBRARY]
    if spec.data_root is not None and spec.data_root.exists():
        command += ["--ro-bind", str(spec.data_root), str(spec.data_root)]
    command += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu",
                "--proc", "/proc", "--dev", "/dev",
                "--size", str(spec.tmp_mb * 2**20), "--tmpfs", "/dev/shm",
                "--bind", str(spec.scratch / "run"), SANDBOX_RUN,
                "--bind", str(spec.scratch / "ipc"), SANDBOX_IPC,
                "--chdir", SANDBOX_RUN, "--clearenv"]
    for key, value in sorted(environment.items()):
        command += ["--setenv", key, value]
    return command + ["--", *argv]


def python_paths() -> list[Path]:
    """The folders the kernel's Python needs: the interpreter's installation and the virtual
    environment (not the repository around it)."""
    paths = []
    for prefix in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.realpath(sys.executable))):
        path = Path(prefix).resolve()
        if str(path).startswith(_SYSTEM_DIRS):
            continue  # already there
        if not any(path == p or p in path.parents for p in paths):
            paths = [p for p in paths if path not in p.parents] + [path]
    return paths


def kernel_environment(*, sandboxed: bool, data_root: Path | None, extra: dict[str, str] | None = None,
                       library: str | None = None) -> dict[str, str]:
    """The whole environment of a graded kernel: nothing of the grader's own, only these."""
    home = SANDBOX_RUN if sandboxed else None
    environment = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
        "LANG": "C.UTF-8",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "NBGRADER_EXECUTION": "autograde",
        "JUPYTER_PLATFORM_DIRS": "1",
        "USER": "student",
        "LOGNAME": "student",
    }
    if home is not None:
        environment.update(HOME=home, TMPDIR="/tmp", MPLCONFIGDIR="/tmp/matplotlib", IPYTHONDIR="/tmp/ipython",
                           JUPYTER_RUNTIME_DIR="/tmp/jupyter", JUPYTER_DATA_DIR="/tmp/jupyter")
    if library is not None:
        environment["PYTHONPATH"] = library
    if data_root is not None:
        environment["COURSE_DATA"] = str(data_root)
    return environment | dict(extra or {})


def make_scratch(prefix: str = "pose-course-grading-") -> Path:
    """A new scratch folder with ``run/`` and ``ipc/``: in ``/dev/shm`` where there is one (its
    files then count in the sandbox's memory budget instead of filling a disk), else in the
    temporary folder."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    scratch = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    for name in ("run", "ipc"):
        (scratch / name).mkdir()
        os.chmod(scratch / name, 0o777)  # the sandbox's user may be mapped to another uid
    return scratch


# -- resource limits over the whole sandbox --------------------------------------------------------------

@dataclass
class ResourceGroup:
    """A cgroup holding every process of one sandbox, with a memory and a task limit.

    :meth:`create` tries cgroup v2 (a child of the grader's own group), then v1 (the ``memory``
    and ``pids`` hierarchies), and returns ``None`` where neither can be made (no permission, no
    controllers delegated): the :class:`Watchdog` then does the job.
    """

    folders: list[Path]
    version: int
    memory_mb: int
    max_processes: int

    @classmethod
    def create(cls, memory_mb: int, max_processes: int) -> "ResourceGroup | None":
        name = f"pose-course-grading-{uuid.uuid4().hex[:12]}"
        for attempt in (cls._create_v2, cls._create_v1):
            try:
                group = attempt(name, memory_mb, max_processes)
            except OSError:
                group = None
            if group is not None:
                return group
        return None

    @classmethod
    def _create_v2(cls, name: str, memory_mb: int, max_processes: int) -> "ResourceGroup | None":
        root = Path("/sys/fs/cgroup")
        if not (root / "cgroup.controllers").exists():
            return None
        own = _own_cgroup("")
        base = root / own.lstrip("/") if own is not None else root
        folder = base / name
        folder.mkdir()
        group = cls([folder], 2, memory_mb, max_processes)
        if not (folder / "memory.max").exists() or not (folder / "pids.max").exists():
            group.remove()
            return None
        if memory_mb:
            (folder / "memory.max").write_text(str(memory_mb * 2**20))
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
        (folder / "pids.max").write_text(str(max_processes))
        if (folder / "cpu.max").exists():
            (folder / "cpu.max").write_text(f"{CPU_PERIOD_US} {CPU_PERIOD_US}")  # one CPU
        return group

    @classmethod
    def _create_v1(cls, name: str, memory_mb: int, max_processes: int) -> "ResourceGroup | None":
        folders = []
        for controller in ("memory", "pids", "cpu"):
            folder = _make_v1_group(controller, name)
            if folder is None and controller != "cpu":  # the CPU share is a courtesy; the rest is required
                cls(folders, 1, 0, 0).remove()
                return None
            if folder is not None:
                folders.append(folder)
        group = cls(folders, 1, memory_mb, max_processes)
        memory, pids = folders[:2]
        if memory_mb:
            (memory / "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
        (pids / "pids.max").write_text(str(max_processes))
        if len(folders) == 3 and (folders[2] / "cpu.cfs_quota_us").exists():
            (folders[2] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
            (folders[2] / "cpu.cfs_quota_us").write_text(str(CPU_PERIOD_US))  # one CPU
        return group

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` started inside this group (a shell joins it, then runs the command)."""
        files = [str(folder / "cgroup.procs") for folder in self.folders]
        script = 'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 97; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *files, "--", *command]

    def peak_memory_mb(self) -> float | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.folders[0] / name).read_text()) / 2**20
        except (OSError, ValueError):
            return None

    def ran_out_of_memory(self) -> bool:
        try:
            if self.version == 2:
                events = dict(line.split() for line in (self.folders[0] / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
            return int((self.folders[0] / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def hit_process_limit(self) -> bool:
        folder = self.folders[0] if self.version == 2 else self.folders[1]
        try:
            events = dict(line.split() for line in (folder / "pids.events").read_text().splitlines())
            return int(events.get("max", 0)) > 0
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL every process left in the group."""
        if self.version == 2 and (self.folders[0] / "cgroup.kill").exists():
            try:
                (self.folders[0] / "cgroup.kill").write_text("1")
            except OSError:
                pass
        for _ in range(50):
            pids = set()
            for folder in self.folders:
                try:
                    pids |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
                except (OSError, ValueError):
                    pass
            if not pids:
                return
            for pid in pids:
                _kill(pid)
            time.sleep(0.02)

    def remove(self) -> None:
        self.kill()
        for folder in self.folders:
            for _ in range(100):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy while the last processes exit
                    time.sleep(0.02)


def _make_v1_group(controller: str, name: str) -> Path | None:
    """``name`` under this process's own cgroup of a v1 ``controller`` (else under its root)."""
    root = Path("/sys/fs/cgroup") / controller
    if not (root / "cgroup.procs").exists():
        return None
    own = _own_cgroup(controller)
    for base in ([root / own.lstrip("/")] if own not in (None, "/") else []) + [root]:
        try:
            (base / name).mkdir()
            return base / name
        except OSError:
            continue
    return None


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path for ``controller`` ("" for v2), from /proc/self/cgroup."""
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if controller in controllers.split(",") or (controller == "" and controllers == ""):
                return path
    except (OSError, ValueError):
        pass
    return None


# -- the watchdog, and finding and stopping a process tree -----------------------------------------------

@dataclass
class Watchdog:
    """Watches the processes under ``pid``: their memory (summed) and how many there are.

    Past ``memory_mb`` or ``max_processes`` it kills them all and says why in :attr:`reason`.
    It also records the peak memory, for the report.  Runs in a thread until :meth:`stop`.
    """

    pid: int
    memory_mb: int
    max_processes: int
    interval: float = 0.2
    reason: str = ""
    peak_mb: float = 0.0
    _stopped: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> "Watchdog":
        self._thread = threading.Thread(target=self._watch, name="grading-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            tree = [self.pid] + descendants(self.pid)
            memory = sum(_memory_mb(pid) for pid in tree)
            tasks = sum(_threads(pid) for pid in tree)
            self.peak_mb = max(self.peak_mb, memory)
            if self.memory_mb and memory > self.memory_mb:
                self.reason = (f"its processes used {memory:.0f} MB together, more than the limit of "
                               f"{self.memory_mb} MB, and were stopped")
            elif tasks > self.max_processes:
                self.reason = (f"it started more than {self.max_processes} processes and threads, and was stopped")
            if self.reason:
                kill_tree(self.pid)
                return


def _memory_mb(pid: int) -> float:
    try:  # proportional set size: pages shared by several processes are split between them
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def _threads(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (found in ``/proc``; empty where there is none)."""
    if Path(f"/proc/{pid}/task").is_dir() and Path(f"/proc/self/task/{os.getpid()}/children").exists():
        return _descendants_by_children_files(pid)
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


def _descendants_by_children_files(pid: int) -> list[int]:
    """The same, from each thread's ``children`` file: a few reads instead of one per process on the machine."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = [int(child) for child in children.read_text().split()]
            except (OSError, ValueError):
                continue
            found += pids
            queue += pids
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it."""
    tree = descendants(pid)
    _kill(pid)
    for child in tree:
        _kill(child)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:  # already gone
        pass
