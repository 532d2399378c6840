"""A slow Storage SCP peer process: stores each instance, then waits before answering.

    with SlowStoreSCP(tmp_path / "pacs", delay=1.0) as pacs:   # free port on 127.0.0.1
        ... C-STORE to ("PACS", "127.0.0.1", pacs.port) ...
        pacs.received()                  # one file per received instance, resends included
        pacs.answers()                   # [(SOP Instance UID, status answered)], in order

``fail_every=k`` answers 0xA700 (out of resources: transient) without storing to the
first arrival of every k-th distinct instance, and Success to any later arrival.

Each instance is written whole (to a temporary name, then renamed) *before* the handler
sleeps ``delay`` seconds and answers Success. A sender killed during the sleep has an
instance in flight that the peer did store but never acknowledged: the case where a
resend cannot be avoided. DCMTK's storescp cannot stage this (its ``--sleep-during``
sleeps before the data is read), so this is a pynetdicom SCP in its own process (a real
peer over a real association). Run as ``python -m tests.support.slow_scp PORT DIR DELAY``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.support.logged import LoggedProcess
from tests.support.ports import free_port
from tests.support.procnet import listening
from tests.support.waiting import ProcessExited, wait_ready

ROOT = Path(__file__).resolve().parents[2]


class SlowStoreSCP(LoggedProcess):
    """The SCP below as a subprocess writing into ``workdir/in``."""

    label = "slow SCP"

    def __init__(
        self, workdir: Path, ae_title: str = "PACS", delay: float = 1.0, fail_every: int = 0
    ) -> None:
        self.workdir = Path(workdir)
        self.ae_title = ae_title
        self.delay = delay
        self.fail_every = fail_every
        self.port = free_port()
        self.out_dir = self.workdir / "in"
        self.log_path = self.workdir / "slow_scp.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self, timeout: float = 20.0) -> SlowStoreSCP:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.slow_scp",
                str(self.port),
                str(self.out_dir),
                str(self.delay),
                self.ae_title,
                str(self.fail_every),
            ],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self.proc, lambda: listening(self.port, self.proc.pid), timeout)
            return self
        except (ProcessExited, TimeoutError):
            pass
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"slow SCP did not start on port {self.port}:\n{tail}")

    def stop(self) -> None:
        self._terminate(5)

    def received(self) -> list[Path]:
        """Files stored so far (complete ones only)."""
        return sorted(self.out_dir.glob("*.dcm"))

    def answers(self) -> list[tuple[str, int]]:
        """(SOP Instance UID, status) of every C-STORE answered, in order."""
        path = self.out_dir / ANSWERS
        lines = path.read_text().splitlines() if path.exists() else []
        return [(uid, int(status, 16)) for uid, status in (line.split() for line in lines)]


ANSWERS = "answers.txt"


def serve(port: int, out_dir: Path, delay: float, ae_title: str, fail_every: int = 0) -> None:
    """Block serving C-STORE on 127.0.0.1:``port``."""
    from pynetdicom import AE, StoragePresentationContexts, evt

    seen: list[str] = []

    def answer(uid: str, status: int) -> int:
        with open(out_dir / ANSWERS, "a") as f:
            f.write(f"{uid} {status:04X}\n")
        return status

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        uid = str(ds.SOPInstanceUID)
        if uid not in seen:
            seen.append(uid)
            if fail_every and len(seen) % fail_every == 0:
                return answer(uid, 0xA700)
        name = uuid.uuid4().hex
        part = out_dir / f"{name}.part"
        ds.save_as(part, enforce_file_format=True)
        os.replace(part, out_dir / f"{name}.dcm")
        print(f"stored {ds.SOPInstanceUID}; answering in {delay}s", flush=True)
        time.sleep(delay)
        return answer(uid, 0x0000)

    ae = AE(ae_title=ae_title)
    ae.supported_contexts = StoragePresentationContexts
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    serve(
        int(sys.argv[1]),
        Path(sys.argv[2]),
        float(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]) if len(sys.argv) > 5 else 0,
    )
