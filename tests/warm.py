"""Warm starts for the tests' Python subprocesses: a forking server that has imported torch,
MLflow and the rest once, so a whole pytest session (and each of its xdist workers) starts as a
fork of it instead of importing them again (6-8 s of CPU a process, most of a short session).

A child is the program it stands for, as far as the tests can tell: the command's working
folder, environment, standard streams (passed over the socket), ``sys.argv`` and ``sys.path``,
signal dispositions and mask as a fresh interpreter's; its own process id to signal or read
in /proc; the exit status (or signal) it ends with. Its ``sys.executable`` is ``CLIENT``, so
the xdist workers a session starts are warm children too; any command line ``CLIENT`` does not
know it runs as the real interpreter would.

What a warm child cannot show is what a fresh interpreter imports: tests of that (the layers'
no-torch test) start ``sys.executable`` themselves.
"""

import atexit
import gc
import io
import json
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# what the suite's sessions import that costs seconds; not normcheck itself (pytest rewrites
# the asserts of a plugin's package when it imports it, and warns if it was imported before)
PRELOAD = ("torch", "torchvision", "mlflow", "mlflow.store.tracking.sqlalchemy_store",
           "pandas", "scipy.stats", "matplotlib", "numpy", "PIL.Image", "filelock", "pytest")
FLAGS = ("-u", "-B")  # the only interpreter options a warm child takes (execnet's)
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
           signal.SIGUSR2)
HEADER = struct.Struct("!I")


def _send(conn: socket.socket, message: dict, fds: list[int]) -> None:
    body = json.dumps(message).encode()
    socket.send_fds(conn, [HEADER.pack(len(body))], fds)
    conn.sendall(body)


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    header, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    (size,) = HEADER.unpack(header)
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ConnectionError("the request ended early")
        body += chunk
    return json.loads(body), fds


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """A command line (after the interpreter's name): its leading options, the rest."""
    flags = []
    while len(flags) < len(argv) and argv[len(flags)] in FLAGS:
        flags.append(argv[len(flags)])
    return flags, argv[len(flags):]


def known(argv: list[str]) -> bool:
    """Whether a warm child can run this command line (after the interpreter's name)."""
    tail = split(argv)[1]
    return len(tail) >= 2 and tail[0] in ("-c", "-m")


# -- the server ---------------------------------------------------------------------------------

class Server:
    """Forks one child per request; tells each requester its child's pid, then its status."""

    def __init__(self, path: str) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(f"{path}.new")
        self.listener.listen(64)
        os.rename(f"{path}.new", path)  # there once it listens: the sign that it is ready
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.children: dict[int, socket.socket] = {}  # pid -> its requester's connection
        self.orphans: set[int] = set()  # children whose requester went away, killed

    def serve(self) -> dict:
        """Serve until a request comes; return it in the forked child. Ends, as its test
        process's servers do, when that process is gone."""
        parent = os.getppid()
        while True:
            if os.getppid() != parent:
                os._exit(0)
            watched = [c for p, c in self.children.items() if p not in self.orphans]
            ready, _, _ = select.select([self.listener, self.wake_r, *watched], [], [], 1.0)
            for r in ready:
                if r is self.listener:
                    request = self._fork(*self.listener.accept())
                    if request is not None:
                        return request
                elif r == self.wake_r:
                    os.read(self.wake_r, 4096)
                else:  # a requester went away (killed): its child goes as it would have
                    pid = next(p for p, c in self.children.items() if c is r)
                    if not r.recv(1, socket.MSG_PEEK):
                        self.orphans.add(pid)
                        _kill(pid, signal.SIGKILL)
            self._reap()

    def _fork(self, conn: socket.socket, _: Any) -> dict | None:
        request, fds = _receive(conn)
        if threading.active_count() > 1:
            raise RuntimeError("a thread started in the warm server: forking is not safe")
        pid = os.fork()
        if pid == 0:
            self._become_child(request, fds, conn)
            return request
        for fd in fds:
            os.close(fd)
        conn.sendall(f"{pid}\n".encode())
        self.children[pid] = conn
        return None

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            self.orphans.discard(pid)
            if conn is not None:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()

    def _become_child(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        signal.set_wakeup_fd(-1)
        for s in (self.listener, conn, *self.children.values()):
            s.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        # a fresh interpreter's signal state: Python's Ctrl-C handler, the rest default
        for sig in range(1, signal.NSIG):
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython sets it at start
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        random.seed()
        flags = split(request["argv"])[0]
        sys.dont_write_bytecode = "-B" in flags or bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
        _streams(unbuffered="-u" in flags or bool(os.environ.get("PYTHONUNBUFFERED")))


def _streams(unbuffered: bool) -> None:
    """Standard streams on the passed descriptors, buffered as a fresh interpreter's."""
    def out(fd: int, errors: str) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        binary = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(binary, encoding="utf-8", errors=errors,
                                line_buffering=not unbuffered and raw.isatty(),
                                write_through=unbuffered)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r",
                                                                             closefd=False)),
                                                 encoding="utf-8")
    sys.stdout = sys.__stdout__ = out(1, "strict")
    sys.stderr = sys.__stderr__ = out(2, "backslashreplace")


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run_child(request: dict, base_path: list[str]) -> None:
    """Run the requested command in this (forked) process, as ``python argv...`` would."""
    import runpy

    kind, target, *rest = split(request["argv"])[1]
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.executable = request["client"]
    if kind == "-c":
        sys.argv = ["-c", *rest]
        sys.path[:] = ["", *extra, *base_path]
        main = sys.modules["__main__"]
        for name in [n for n in vars(main) if n not in ("__builtins__",)]:
            delattr(main, name)
        main.__name__, main.__doc__, main.__package__, main.__spec__ = "__main__", None, None, None
        exec(compile(target, "<string>", "exec"), vars(main))
    else:
        sys.argv = [target, *rest]
        sys.path[:] = [os.getcwd(), *extra, *base_path]
        runpy.run_module(target, run_name="__main__", alter_sys=True)


def main(path: str, client: str, base_path: list[str]) -> None:
    """The server's process: import, then serve; in each child, run its command.
    ``base_path``: the interpreter's own ``sys.path`` (no script folder, no PYTHONPATH)."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    if threading.active_count() > 1:
        raise RuntimeError(f"importing {PRELOAD} started threads: forking would not be safe")
    _as_if_not_imported_by_pytest()
    gc.freeze()  # the children's collections then leave the shared pages alone
    request = Server(path).serve()
    request["client"] = client
    _exit_as_python(lambda: run_child(request, base_path))


def _as_if_not_imported_by_pytest() -> None:
    """A pytest plugin's package imported here (MLflow imports anyio) would make each child's
    pytest warn that it cannot rewrite its asserts, which a cold one, importing the plugin
    itself, does not: mark such packages as not to be rewritten, pytest's own marker."""
    from importlib.metadata import entry_points

    for plugin in entry_points(group="pytest11"):
        module = sys.modules.get(plugin.value.split(":")[0].split(".")[0])
        if module is not None:
            module.__doc__ = f"{module.__doc__ or ''}\n\nPYTEST_DONT_REWRITE"


def _exit_as_python(program: Callable[[], None]) -> None:
    """Run ``program`` and end the process as the interpreter ends it: the exit code of a
    ``SystemExit``, a traceback and 1 for an error, death by SIGINT after an uncaught Ctrl-C;
    non-daemon threads joined, then the ``atexit`` functions (logging's, weakref finalizers',
    MLflow's), the streams flushed. Not the teardown of every module: in a fork that touches
    every page it shares with the server, copying them all (4 s here)."""
    code, interrupted = 0, False
    try:
        program()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        sys.excepthook(*sys.exc_info())
        interrupted = True
    except BaseException:
        sys.excepthook(*sys.exc_info())
        code = 1
    threading._shutdown()  # what the interpreter does first when it ends
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code)


# -- the clients ----------------------------------------------------------------------------------

CLIENT = '''#!{python} -SE
"""python, warm: hand this command to the warm server, or run it cold if it cannot."""
import sys
sys.path.insert(0, {here!r})
import warm
warm.client({path!r}, {python!r})
'''


def client(path: str, python: str) -> None:
    """``CLIENT``'s body: run ``sys.argv`` as a warm child, relaying the signals this process
    gets and ending as the child ends; a command line a child cannot run, cold."""
    argv = sys.argv[1:]
    if not known(argv):
        os.execv(python, [python, *argv])
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    _send(conn, {"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}, [0, 1, 2])
    lines = conn.makefile("r")
    pid = int(lines.readline())
    for sig in SIGNALS:
        signal.signal(sig, lambda s, _: os.kill(pid, s))
    code = _status(lines)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)


def _status(lines: io.TextIOBase) -> int:
    """The child's exit status as the server reports it (negative: killed by that signal);
    the server gone without a word: killed."""
    line = lines.readline()
    return int(line) if line else -signal.SIGKILL


class Warm:
    """The warm server of one test process, and the client script its children run as."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        # a socket's path must fit in 108 bytes, which a deep pytest temporary folder may not
        self.sockets = Path(tempfile.mkdtemp(prefix="nc-warm-"))
        self.path = str(self.sockets / "warm.sock")
        self.client = folder / "python"
        self.client.write_text(CLIENT.format(python=sys.executable, path=self.path,
                                             here=str(Path(__file__).parent)))
        self.client.chmod(0o755)
        log = (folder / "warm.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import os, sys; own = os.environ.get('PYTHONPATH', '')"
             ".split(os.pathsep); base = [p for p in sys.path[1:] if p not in own]; "
             f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import warm; "
             f"warm.main({self.path!r}, {str(self.client)!r}, base)"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()  # the server has its own copy
        deadline = time.monotonic() + 120
        while not os.path.exists(self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the warm server did not start: {folder / 'warm.log'}")
            time.sleep(0.1)

    def popen(self, argv: list[str], cwd: Path, env: dict[str, str],
              stdin: int | None = None, stdout: int | None = None,
              stderr: int | None = None) -> "WarmProcess":
        """Start ``python argv...`` as a warm child: a ``subprocess.Popen`` look-alike."""
        return WarmProcess(self, argv, cwd, env, stdin, stdout, stderr)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.sockets, ignore_errors=True)


class WarmProcess:
    """What the tests use of ``subprocess.Popen``, for a warm child: its pid, its output as a
    text stream (``stdout=PIPE``), ``poll``, ``wait``, ``communicate``, signals."""

    def __init__(self, warm: Warm, argv: list[str], cwd: Path, env: dict[str, str],
                 stdin: int | None, stdout: int | None, stderr: int | None) -> None:
        if not known(argv):
            raise ValueError(f"a warm child cannot run {argv!r}")
        streams: list[int] = []
        theirs_only: list[int] = []  # descriptors only the child keeps
        for fd, given in ((0, stdin), (1, stdout), (2, stderr)):
            if given == subprocess.PIPE:
                r, w = os.pipe()
                mine, theirs = (w, r) if fd == 0 else (r, w)
                theirs_only.append(theirs)
                streams.append(theirs)
                setattr(self, ("stdin", "stdout", "stderr")[fd],
                        os.fdopen(mine, "w" if fd == 0 else "r"))
            elif given == subprocess.STDOUT:
                streams.append(streams[1])
                self.stderr = None
            elif given == subprocess.DEVNULL:
                null = os.open(os.devnull, os.O_RDWR)
                theirs_only.append(null)
                streams.append(null)
                setattr(self, ("stdin", "stdout", "stderr")[fd], None)
            else:
                streams.append(fd if given is None else given)
                setattr(self, ("stdin", "stdout", "stderr")[fd], None)
        self.args = argv
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(warm.path)
        _send(self._conn, {"argv": argv, "cwd": str(cwd), "env": env}, streams)
        for fd in theirs_only:
            os.close(fd)
        self._lines = self._conn.makefile("r")
        self.pid = int(self._lines.readline())
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._conn], [], [], 0)[0]:
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            if not select.select([self._conn], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self._finish()
        return self.returncode

    def _finish(self) -> None:
        self.returncode = _status(self._lines)
        self._conn.close()

    def communicate(self, timeout: float | None = None) -> tuple[str | None, str | None]:
        """Read the output to its end (what the stream holds already first), then wait;
        ``timeout`` bounds it all, as ``Popen.communicate``'s does."""
        out: dict[str, str] = {}
        readers = [threading.Thread(target=lambda n=name, s=stream: out.setdefault(n, s.read()),
                                    daemon=True)
                   for name, stream in (("out", self.stdout), ("err", self.stderr)) if stream]
        deadline = None if timeout is None else time.monotonic() + timeout
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout)
        self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return out.get("out"), out.get("err")

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            _kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
