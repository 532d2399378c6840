"""Log handling shared by the peer processes tests start (storescp, Orthanc)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO, Any


class LoggedProcess:
    """A peer whose output goes to ``log_path``; shows its log tail when a test fails."""

    log_path: Path
    _log: IO[bytes] | None
    proc: subprocess.Popen[bytes] | None
    label = "peer"

    def _terminate(self, grace: float) -> None:
        """SIGTERM, kill after ``grace`` s, close the log."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_text(self) -> str:
        """The whole log so far."""
        if self._log is not None:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            print(
                f"--- {self.label} log ({self.log_path}) ---\n{self.log_tail(80)}", file=sys.stderr
            )
        self.stop()
