"""DCMTK ``storescp`` as a destination peer inside tests.

    with StoreSCP(tmp_path / "scp") as scp:        # free port on 127.0.0.1
        ... send to ("STORESCP", "127.0.0.1", scp.port) ...
        scp.received()                              # files written so far
    StoreSCP(..., extra_args=["--refuse"])          # every association rejected
    scp.stop(); ...; scp.start()                    # destination down, then back (same port)

DCMTK runs with ``TCP_NODELAY=1`` (see :func:`dcmtk_env`). Received files are written
bit-preserving (``+B``): the dataset bytes are exactly what
came over the network. Verbose output with presentation contexts (``-v +v``) goes to
``scp.log_path``; when the ``with`` block fails, the log's tail is printed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.dcmtk import dcmtk_env, dcmtk_tool
from tests.support.logged import LoggedProcess
from tests.support.ports import free_port
from tests.support.procnet import listening
from tests.support.waiting import ProcessExited, wait_ready, wait_until


class StoreSCP(LoggedProcess):
    """A DCMTK storescp process on a free loopback port writing into ``workdir/in``."""

    label = "storescp"

    def __init__(
        self,
        workdir: Path,
        ae_title: str = "STORESCP",
        port: int | None = None,
        extra_args: list[str] | tuple[str, ...] = (),
        bit_preserving: bool = True,
        accept_all: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.ae_title = ae_title
        self.port = port or free_port()
        self._may_move = port is None
        self.extra_args = list(extra_args)
        self.bit_preserving = bit_preserving
        self.accept_all = accept_all
        self.out_dir = self.workdir / "in"
        self.log_path = self.workdir / "storescp.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def command(self) -> list[str]:
        """The storescp command line."""
        cmd = [
            dcmtk_tool("storescp"),
            "-v",
            "+v",
            "-aet",
            self.ae_title,
            "-od",
            str(self.out_dir),
            "-ta",
            "10",
            "-td",
            "30",
        ]
        if self.accept_all:
            cmd.append("+xa")  # accept compressed transfer syntaxes too
        if self.bit_preserving:
            cmd.append("+B")
        return [*cmd, *self.extra_args, str(self.port)]

    def start(self, extra_args: list[str] | None = None, timeout: float = 15.0) -> StoreSCP:
        """Start (or restart) on the same port; ``extra_args`` replaces the extra options.

        If the port was chosen here (not given) and another process grabbed it before
        storescp could bind, a new free port is tried (up to 3 times) on the first start.
        """
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("storescp already running")
        if extra_args is not None:
            self.extra_args = list(extra_args)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        tries = 3 if self._may_move else 1
        for attempt in range(tries):
            if self._start_once(timeout):
                self._may_move = False
                return self
            failure = self.log_tail()
            self.stop()
            if attempt + 1 < tries:
                self.port = free_port()
        raise RuntimeError(f"storescp did not start on port {self.port}:\n{failure}")

    def _start_once(self, timeout: float) -> bool:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log.write(f"\n=== start: {' '.join(self.command())}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=dcmtk_env()
        )
        try:
            return wait_ready(self.proc, lambda: listening(self.port, self.proc.pid), timeout)
        except (ProcessExited, TimeoutError):
            return False

    def stop(self) -> None:
        """Terminate the process (kill after 5 s); the port becomes free."""
        self._terminate(5)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def received(self) -> list[Path]:
        """Files written so far (sorted by name)."""
        if not self.out_dir.exists():
            return []
        return sorted(p for p in self.out_dir.rglob("*") if p.is_file())

    def wait_for_files(self, n: int, timeout: float = 10.0) -> list[Path]:
        """Block until at least ``n`` files were written."""

        def enough() -> list[Path]:
            files = self.received()
            return files if len(files) >= n else []

        return wait_until(
            enough,
            timeout,
            interval=0.05,
            describe=lambda: (
                f"storescp received {len(self.received())} of {n} files:\n{self.log_tail()}"
            ),
        )


def proposed_contexts(log: str) -> list[list[tuple[str, list[str]]]]:
    """Per association in a ``-v +v`` storescp log: the proposed (abstract syntax, [TS…]).

    Names are DCMTK's (``=CTImageStorage``, ``=LittleEndianExplicit``) without the ``=``.
    """
    associations: list[list[tuple[str, list[str]]]] = []
    current: list[tuple[str, list[str]]] | None = None
    for raw in log.splitlines():
        line = raw.removeprefix("I:").strip()
        if "BEGIN A-ASSOCIATE-RQ" in line:
            current = []
        elif "END A-ASSOCIATE-RQ" in line:
            if current is not None:
                associations.append(current)
            current = None
        elif current is not None and line.startswith("Abstract Syntax:"):
            current.append((line.split(":", 1)[1].strip().lstrip("="), []))
        elif current is not None and current and line.startswith("=") and ":" not in line:
            current[-1][1].append(line.lstrip("="))
    return associations
