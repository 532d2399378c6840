"""CPU and wall time per one-image association: storescu -> storescp, stock pynetdicom, node.

A CR or DX modality often opens one association per image. This sends N CT slices, each
on its own DCMTK ``storescu`` association, one after another (as ``receive.py
--per-association 1`` does), to each receiver in turn, and reads the receiver process's
CPU time (user + system, all its threads) from ``/proc/PID/stat`` before and after:

- ``storescp``: DCMTK storescp writing to a temp dir (no fsync);
- ``stock``: a stock pynetdicom SCP (``stock_pynetdicom_scp.py``, no tweak, ``save_as``);
- ``node``: our node (this checkout, every tweak); ``node:SPEC`` with
  ``DICOM_NODE_TWEAKS=SPEC`` (e.g. ``node:none``, ``node:-loop_delay``);
- ``baseline:DIR``: the node of another checkout, for each ``--baseline DIR`` given.

Each round runs every receiver once, in ABBA order (reversed every other round), after
three warm-up associations; the medians over rounds are printed with each round's
figure. CPU per association is much less noisy than throughput on a shared machine.

``--first-job``: each node first runs one job (the demo model on one CR image, from a
calling AE only a rule for it matches), as a serving node has: what the job loaded
stays, and full collections walk it unless it was frozen after the job.

``--idle N``: instead, hold N associations open and silent (pynetdicom SCU, CT Image
Storage) for ``--idle-seconds`` and print each receiver's CPU per idle association, in % of a
core (pynetdicom's reactors poll while idle; storescp blocks in a read). storescp serves
one association at a time, so it is given one.

    python benchmarks/assoc_cpu.py [--associations 100] [--rounds 4]
        [--receivers storescp,stock,node,node:none] [--baseline DIR ...] [--first-job]
        [--idle N [--idle-seconds 5]]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_node.synthetic import iter_ct_series, write_files  # noqa: E402
from tests.support.dcmtk import dcmtk_env, dcmtk_tool  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.proc_cpu import cpu_seconds  # noqa: E402

WARM_UP = 3  # associations before the measured ones (imports, caches, first files)


FIRST_JOB_AE = "FIRSTJOB"


def first_job_config() -> dict:
    """A rule running the demo model only on what ``FIRST_JOB_AE`` sends."""
    from ai.bundled.cache import DEMO_NAME

    return {
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
        "routes": [
            {"name": "first", "models": [DEMO_NAME], "match": {"calling_ae": [FIRST_JOB_AE]}}
        ],
    }


def run_first_job(node: NodeProcess, work: Path) -> None:
    """One CR image from ``FIRST_JOB_AE``; wait for its job to be done (and the node's
    work after it)."""
    from dicom_node.synthetic import make_cr
    from tests.support.index import job_rows
    from tests.support.waiting import wait_until

    [image] = write_files([make_cr(seed=5)], work / "first-job")
    subprocess.run(
        [dcmtk_tool("storescu"), "-aet", FIRST_JOB_AE, "-aec", "DICOM_NODE"]
        + ["127.0.0.1", str(node.port), str(image)],
        env=dcmtk_env(),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    wait_until(
        lambda: [r[1] for r in job_rows(node.data_dir)] == ["done"],
        timeout=180,
        interval=0.3,
        describe=node.log,
    )
    time.sleep(1.0)  # what follows the job's end (trim, freeze) in the worker thread


@contextmanager
def receiver(name: str, work: Path, first_job: bool = False) -> Iterator[tuple[int, int, str]]:
    """Start receiver ``name`` in ``work``; yield (pid, port, called AE title)."""
    if name in ("storescp", "stock"):
        port = free_port()
        out = work / "out"
        out.mkdir(parents=True)
        if name == "storescp":
            cmd = [dcmtk_tool("storescp"), "-aet", "STORESCP", "-od", str(out), str(port)]
        else:
            cmd = [sys.executable, str(ROOT / "benchmarks/stock_pynetdicom_scp.py"), str(port)]
            cmd.append(str(out))
        proc = subprocess.Popen(
            cmd, env=dcmtk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port, timeout=30)
            yield proc.pid, port, "STORESCP" if name == "storescp" else "STOCK"
        finally:
            proc.terminate()
            proc.wait(10)
        return
    kind, _, arg = name.partition(":")
    root = Path(arg) if kind == "baseline" else None
    tweaks = arg if kind == "node" and arg else "all"
    node = NodeProcess(
        work / "node",
        {"logging": {"level": "WARNING"}} | (first_job_config() if first_job else {}),
        env={"DICOM_NODE_TWEAKS": tweaks},
        root=root,
    )
    node.start()
    try:
        if first_job:
            run_first_job(node, work)
        yield node.pid, node.port, "DICOM_NODE"
    finally:
        node.stop()


def one_round(
    name: str, files: list[Path], work: Path, first_job: bool = False
) -> tuple[float, float]:
    """Send each of ``files`` on its own association; return (CPU ms, wall ms) per association."""
    storescu = dcmtk_tool("storescu")
    with receiver(name, work, first_job) as (pid, port, ae):

        def send(f: Path) -> None:
            subprocess.run(
                [storescu, "-aec", ae, "127.0.0.1", str(port), str(f)],
                env=dcmtk_env(),
                stdout=subprocess.DEVNULL,
                check=True,
            )

        for f in files[:WARM_UP]:
            send(f)
        measured = files[WARM_UP:]
        c0, t0 = cpu_seconds(pid), time.perf_counter()
        for f in measured:
            send(f)
        wall = time.perf_counter() - t0
        # The association's last work (release, threads ending) follows storescu's exit.
        time.sleep(0.3)
        cpu = cpu_seconds(pid) - c0
    return cpu / len(measured) * 1e3, wall / len(measured) * 1e3


def idle_round(name: str, work: Path, associations: int, seconds: float) -> float:
    """CPU (% of a core) the receiver spends per association held open and silent."""
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    n = 1 if name == "storescp" else associations
    with receiver(name, work) as (pid, port, called):
        ae = AE(ae_title="IDLER")
        ae.add_requested_context(CTImageStorage)  # every receiver here stores CT
        held = [ae.associate("127.0.0.1", port, ae_title=called) for _ in range(n)]
        try:
            if not all(a.is_established for a in held):
                raise RuntimeError(f"{name}: not every idle association was accepted")
            time.sleep(1.0)  # the associations' start-up work is over
            c0 = cpu_seconds(pid)
            time.sleep(seconds)
            return (cpu_seconds(pid) - c0) / seconds / n * 100
        finally:
            for a in held:
                a.release()


def idle_main(names: list[str], associations: int, seconds: float, rounds: int) -> None:
    print(f"{associations} idle association(s) for {seconds:.0f} s per receiver, {rounds} rounds")
    cpu: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        for r in range(rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                work = Path(tmp) / f"r{r}-{names.index(name)}"
                cpu[name].append(idle_round(name, work, associations, seconds))
    print("receiver          CPU % of a core per idle association (median; per round)")
    for n in names:
        rounds_ = ", ".join(f"{x:.1f}" for x in cpu[n])
        print(f"{n:16s} {statistics.median(cpu[n]):8.1f}   ({rounds_})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--associations", type=int, default=100, help="measured per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--receivers", default="storescp,stock,node,node:none")
    ap.add_argument(
        "--baseline", action="append", default=[], help="another checkout whose node runs too"
    )
    ap.add_argument("--first-job", action="store_true", help="each node runs one demo job before")
    ap.add_argument("--idle", type=int, default=0, help="measure N idle associations instead")
    ap.add_argument("--idle-seconds", type=float, default=5.0)
    args = ap.parse_args()
    names = [n.strip() for n in args.receivers.split(",") if n.strip()]
    names += [f"baseline:{d}" for d in args.baseline]
    if args.idle:
        idle_main(names, args.idle, args.idle_seconds, args.rounds)
        return
    with tempfile.TemporaryDirectory(prefix="bench-assoc-") as tmp:
        tmpdir = Path(tmp)
        count = args.associations + WARM_UP
        files = write_files(iter_ct_series(count, rows=512, cols=512), tmpdir / "src")
        print(
            f"{args.associations} associations of one 512x512 CT slice each (+{WARM_UP} "
            f"warm-up), DCMTK storescu one after another, {args.rounds} rounds"
            f"{', each node after one demo job' if args.first_job else ''}, load "
            f"{os.getloadavg()[0]:.1f}"
        )
        cpu: dict[str, list[float]] = {n: [] for n in names}
        wall: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.rounds):
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                c, w = one_round(name, files, tmpdir / f"r{r}-{names.index(name)}", args.first_job)
                cpu[name].append(c)
                wall[name].append(w)
            print(
                f"round {r + 1}: "
                + ", ".join(f"{n} {cpu[n][-1]:.1f} ms CPU {wall[n][-1]:.1f} ms" for n in names)
                + f" (load {os.getloadavg()[0]:.1f})"
            )
        print("receiver          CPU ms/assoc   wall ms/assoc   assoc/s   (medians; per round CPU)")
        for n in names:
            c, w = statistics.median(cpu[n]), statistics.median(wall[n])
            rounds = ", ".join(f"{x:.1f}" for x in cpu[n])
            print(f"{n:16s} {c:12.1f} {w:15.1f} {1e3 / w:9.1f}   ({rounds})")
        for other in [n for n in names if n.startswith(("node:", "baseline:"))]:
            if "node" not in names:
                break
            per_round = ", ".join(
                f"{a / b - 1:+.0%}" for a, b in zip(cpu["node"], cpu[other], strict=True)
            )
            print(
                f"node vs {other}: CPU per association "
                f"{statistics.median(cpu['node']) / statistics.median(cpu[other]) - 1:+.0%} "
                f"(per round {per_round}), assoc/s "
                f"{statistics.median(wall[other]) / statistics.median(wall['node']) - 1:+.0%}"
            )


if __name__ == "__main__":
    main()
