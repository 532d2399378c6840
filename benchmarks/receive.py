"""Receive throughput: DCMTK storescu -> DCMTK storescp vs storescu -> dicom-node.

Generates 500 CT slices (512x512, 16-bit, ~250 MB), then for several rounds sends them
over one association (TCP_NODELAY=1) to (a) storescp writing to a temp dir and (b) our
node (durable writes + indexing). Prints instances/s and MB/s of each, the ratio
ours/storescp, and the node's peak RSS (VmHWM).

Two references put the ratio in context, measured in the same rounds: a bare pynetdicom
SCP whose handler stores nothing (the ceiling of any pynetdicom receiver), and the cost
of durability on this disk (the node's own spool write and placement of the same files
with and without fsync, no network). storescp does not fsync; a receiver that must has roughly
bare pynetdicom's time plus that cost (less whatever of the fsync it overlaps with its
own work), which turns into an estimated ceiling ratio. The same cost added to storescp's
own time estimates a receiver as fast as storescp itself that fsyncs each instance before
it answers: storescu sends the next instance only after the response, so no receiver can
hide the fsync behind the next transfer.

    python benchmarks/receive.py [--instances 500] [--rounds 5] [--associations 1]

``--associations N`` deals the files out to N concurrent storescu processes (for both
peers), as a PACS sending with several associations would; the issue's target is for 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_node.synthetic import iter_ct_series, write_files  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402

ENV = {**os.environ, "TCP_NODELAY": "1"}


ASSOCIATIONS = 1  # set from --associations


def send(files: list[Path], ae: str, port: int) -> float:
    """Run storescu over ASSOCIATIONS concurrent associations (the files dealt out among
    them); return the wall time in seconds."""
    os.sync()  # no writeback left over from an earlier run competes with this one
    parts = [files[i::ASSOCIATIONS] for i in range(ASSOCIATIONS)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(["storescu", "-aec", ae, "127.0.0.1", str(port),
                               *map(str, part)], env=ENV, stdout=subprocess.DEVNULL)
             for part in parts]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"storescu to {ae} failed")
    return time.perf_counter() - t0


def fresh(work: Path) -> Path:
    """``work``, emptied: every peer writes into the same filesystem state. (Files left
    from earlier rounds, a few GB, slowed storescp and the node alike on our VM, by up
    to 2x, and made the rounds drift.)"""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    os.sync()
    return work


def round_storescp(files: list[Path], work: Path, max_pdu: int) -> float:
    """One round against DCMTK storescp writing into a fresh directory."""
    out = work / "storescp"
    out.mkdir()
    port = free_port()
    proc = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(out), "--max-pdu",
                             str(max_pdu), str(port)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        secs = send(files, "STORESCP", port)
        got = len(list(out.iterdir()))
        if got != len(files):
            raise RuntimeError(f"storescp stored {got} of {len(files)}")
        return secs
    finally:
        proc.terminate()
        proc.wait(10)


def round_pynetdicom_floor(files: list[Path]) -> float:
    """Reference: a bare pynetdicom SCP whose handler stores nothing, tuned like our node
    (same DUL loop delay, reactor/socket tweaks and inline C-STOREs): the ceiling of any
    pynetdicom-based receiver on this machine."""
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt

    from dicom_node.network import inline, reactor
    from dicom_node.network.scp import DUL_LOOP_DELAY

    reactor.install()
    _config.LOG_HANDLER_LEVEL = "none"  # as the node does when pynetdicom logs >= WARNING

    def tune(event: evt.Event) -> None:
        event.assoc.dul._run_loop_delay = DUL_LOOP_DELAY
        inline.serve_inline(event.assoc)

    ae = AE(ae_title="FLOOR")
    ae.maximum_pdu_size = 0
    for cx in AllStoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    port = free_port()
    server = ae.start_server(("127.0.0.1", port), block=False,
                             evt_handlers=[(evt.EVT_C_STORE, lambda event: 0x0000),
                                           (evt.EVT_REQUESTED, tune)])
    try:
        return send(files, "FLOOR", port)
    finally:
        server.shutdown()


def round_durability(files: list[Path], work: Path) -> float:
    """Seconds that fsync adds to storing ``files`` the node's way: each file written
    into ``incoming/`` as the spool does, then placed by the node's own
    ``InstanceStore.place`` (link into place, fsync file and directory) and waited for,
    minus the same without fsync."""
    from dicom_node.store.writer import InstanceStore

    times = {}
    for fsync in (False, True):
        store = InstanceStore(work / f"durable-{fsync}", fsync=fsync)
        store.open()
        os.sync()
        secs = 0.0
        for i, f in enumerate(files):
            data = f.read_bytes()
            t0 = time.perf_counter()
            spooled = store.incoming / f"{i}.dcm"
            fd = os.open(spooled, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            store.place(spooled, store.path_for("1.2.3", "1.2.3.4", str(i))).wait_durable()
            secs += time.perf_counter() - t0
        store.close()
        times[fsync] = secs
    return max(times[True] - times[False], 0.0)


def round_node(files: list[Path], work: Path) -> tuple[float, int]:
    """One round against our node; return (seconds, peak RSS in kB)."""
    node = NodeProcess(work / "node", {"logging": {"level": "WARNING"}})
    node.start()
    try:
        secs = send(files, "DICOM_NODE", node.port)
        rss = node.peak_rss_kb()
        got = sum(1 for _ in (node.data_dir / "instances").rglob("*.dcm"))
        if got != len(files):
            raise RuntimeError(f"node stored {got} of {len(files)}")
        return secs, rss
    finally:
        node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--associations", type=int, default=1,
                    help="concurrent storescu associations (the issue's target: 1)")
    ap.add_argument("--storescp-max-pdu", type=int, default=131072,
                    help="storescp's receive PDU (its largest allowed: 131072)")
    args = ap.parse_args()
    global ASSOCIATIONS
    ASSOCIATIONS = args.associations
    with tempfile.TemporaryDirectory(prefix="bench-receive-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        files = write_files(iter_ct_series(args.instances, rows=512, cols=512),
                            tmpdir / "src")
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(f"{len(files)} CT slices 512x512x16, {total_mb:.1f} MB "
              f"(generated in {time.perf_counter() - t0:.1f} s), "
              f"{ASSOCIATIONS} storescu association(s)")
        theirs, ours, rss, floor, durable = [], [], [], [], []
        for r in range(args.rounds):
            work = tmpdir / f"round{r}"
            # Alternate the order so neither side always gets the warmer page cache.
            if r % 2 == 0:
                theirs.append(round_storescp(files, fresh(work), args.storescp_max_pdu))
                s, k = round_node(files, fresh(work))
            else:
                s, k = round_node(files, fresh(work))
                theirs.append(round_storescp(files, fresh(work), args.storescp_max_pdu))
            shutil.rmtree(work)
            ours.append(s)
            rss.append(k)
            floor.append(round_pynetdicom_floor(files))
            print(f"round {r + 1}: storescp {theirs[-1]:.2f} s, bare pynetdicom "
                  f"{floor[-1]:.2f} s, dicom-node {s:.2f} s, node peak RSS {k / 1024:.0f} MB")
        # After the rounds: its bulk writes would otherwise slow whatever runs next.
        for r in range(args.rounds):
            durable.append(round_durability(files, fresh(tmpdir / f"durable{r}")))
            shutil.rmtree(tmpdir / f"durable{r}")
        print("fsync cost per round: " + ", ".join(f"{d:.2f} s" for d in durable))
        n = len(files)
        med_t, med_o = statistics.median(theirs), statistics.median(ours)
        print(f"storescp   : {n / med_t:7.1f} instances/s {total_mb / med_t:7.1f} MB/s "
              f"(median of {args.rounds})")
        med_f = statistics.median(floor)
        print(f"bare pynd. : {n / med_f:7.1f} instances/s {total_mb / med_f:7.1f} MB/s "
              f"(median of {args.rounds}; pynetdicom SCP, handler stores nothing)")
        print(f"dicom-node : {n / med_o:7.1f} instances/s {total_mb / med_o:7.1f} MB/s "
              f"(median of {args.rounds}; fsync per file + dir, indexed)")
        print(f"spread (min-max s): storescp {min(theirs):.2f}-{max(theirs):.2f}, bare "
              f"{min(floor):.2f}-{max(floor):.2f}, dicom-node {min(ours):.2f}-{max(ours):.2f}")
        print(f"ratio ours/storescp: {med_t / med_o:.2f}   (target >= 0.6)")
        per_round = [t / o for t, o in zip(theirs, ours, strict=True)]
        print(f"ratio ours/storescp within each round (same machine state): "
              f"{', '.join(f'{x:.2f}' for x in per_round)}; median "
              f"{statistics.median(per_round):.2f}")
        print(f"ratio bare pynetdicom/storescp: {med_t / med_f:.2f}   "
              f"ratio ours/bare pynetdicom: {med_f / med_o:.2f}")
        med_d = statistics.median(durable)
        print(f"fsync cost : {med_d / n * 1e3:.2f} ms/instance (the node's write, link, fsync "
              f"of file and directory minus the same without fsync; median of {args.rounds})")
        print(f"estimated ceiling ratio of a pynetdicom receiver that fsyncs (bare + fsync "
              f"cost, no parsing or indexing): {med_t / (med_f + med_d):.2f}")
        # storescu waits for each response and Success may only follow the fsync: a
        # receiver as fast as storescp itself still adds the whole fsync cost.
        print(f"estimated ratio of a receiver as fast as storescp that fsyncs each instance "
              f"before answering (storescp + fsync cost): {med_t / (med_t + med_d):.2f}")
        print(f"node peak RSS: {max(rss) / 1024:.0f} MB   (target < 300 MB)")


if __name__ == "__main__":
    main()
