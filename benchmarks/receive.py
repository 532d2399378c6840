"""Receive throughput: storescu -> storescp, a stock pynetdicom SCP and dicom-node.

Generates CT slices (512x512, 16-bit), then for several rounds sends them over one
association (TCP_NODELAY=1) to, in the same run:

- DCMTK storescp writing to a temp dir (no fsync);
- a *stock* pynetdicom SCP (``stock_pynetdicom_scp.py``: no tweak, its handler writes
  each ``event.dataset`` to a file with ``save_as``, no fsync);
- our node (spool, fsync of file and directory, index, then Success).

It also measures the cost of durability on this disk (the node's own write and placement
of the same files with and without fsync, no network) and prints the *durable ceiling*:
a receiver as fast as storescp that fsyncs each instance before it answers (storescp's
time + the fsync cost; storescu waits for each response, so no receiver hides the
fsync). Goals: node / durable ceiling >= 0.8, node / stock pynetdicom >= 1.0.

``--ab`` adds, in every round, the node with each pynetdicom tweak turned off alone
(``DICOM_NODE_TWEAKS=-name``) and with none, and prints each tweak's gain: a tweak
stays only if it earns >= 15% node throughput on its own.

``--baseline DIR`` adds the node of another checkout to every round (a same-run A/B of
any change, not only of a tweak).

    python benchmarks/receive.py [--instances 200] [--rounds 3] [--ab] [--associations 1]
                                 [--per-association N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dicom_node.synthetic import iter_ct_series, write_files  # noqa: E402
from tests.support.dcmtk import dcmtk_tool  # noqa: E402
from tests.support.node_process import NodeProcess  # noqa: E402
from tests.support.ports import free_port, wait_for_port  # noqa: E402
from tests.support.proc_cpu import cpu_split  # noqa: E402

ENV = {**os.environ, "TCP_NODELAY": "1"}


ASSOCIATIONS = 1  # set from --associations
PER_ASSOCIATION = 0  # files per association, from --per-association (0: all of a stream's)
BASELINE = "baseline"  # the variant run from --baseline's checkout


def send(files: list[Path], ae: str, port: int) -> float:
    """Run storescu over ASSOCIATIONS concurrent streams (the files dealt out among them),
    each stream one association, or one after another of PER_ASSOCIATION files each;
    return the wall time in seconds."""
    os.sync()  # no writeback left over from an earlier run competes with this one
    parts = [files[i::ASSOCIATIONS] for i in range(ASSOCIATIONS)]
    failed: list[int] = []

    def stream(part: list[Path]) -> None:
        step = PER_ASSOCIATION or len(part)
        for i in range(0, len(part), step):
            command = [dcmtk_tool("storescu"), "-aec", ae, "127.0.0.1", str(port)]
            done = subprocess.run(
                command + [str(f) for f in part[i : i + step]],
                env=ENV,
                stdout=subprocess.DEVNULL,
            )
            if done.returncode:
                failed.append(done.returncode)
                return

    threads = [threading.Thread(target=stream, args=(part,)) for part in parts]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
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
    proc = subprocess.Popen(
        [
            dcmtk_tool("storescp"),
            "-aet",
            "STORESCP",
            "-od",
            str(out),
            "--max-pdu",
            str(max_pdu),
            str(port),
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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


def round_stock_pynetdicom(files: list[Path], work: Path) -> float:
    """One round against a stock pynetdicom SCP (its own process, no tweak) that writes
    each received dataset to a file."""
    out = work / "stock"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks/stock_pynetdicom_scp.py"), str(port), str(out)],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, timeout=30)
        secs = send(files, "STOCK", port)
        got = len(list(out.iterdir()))
        if got != len(files):
            raise RuntimeError(f"stock pynetdicom stored {got} of {len(files)}")
        return secs
    finally:
        proc.terminate()
        proc.wait(10)


def round_durability(files: list[Path], work: Path) -> float:
    """Seconds that fsync adds to storing ``files`` the node's way: each file written
    into ``incoming/`` as the spool does, then placed by the node's own
    ``InstanceStore.place`` (link into place, fsync file and directory) and waited for;
    the placements timed, minus the same without fsync."""
    from dicom_node.store.writer import InstanceStore

    times = {}
    for fsync in (False, True):
        store = InstanceStore(work / f"durable-{fsync}", fsync=fsync)
        store.open()
        os.sync()
        secs = 0.0
        for i, f in enumerate(files):
            data = f.read_bytes()
            spooled = store.incoming / f"{i}.dcm"
            fd = os.open(spooled, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            # Timed from here: without fsync, the writes themselves slow down once the
            # dirty pages pile up (writeback throttling), which hid the fsync's cost
            # (0.01 ms measured once).
            t0 = time.perf_counter()
            store.place(spooled, store.path_for("1.2.3", "1.2.3.4", str(i))).wait_durable()
            secs += time.perf_counter() - t0
        store.close()
        times[fsync] = secs
    return max(times[True] - times[False], 0.0)


def round_node(
    files: list[Path], work: Path, tweaks: str = "all", root: Path | None = None
) -> tuple[float, int, tuple[float, float]]:
    """One round against our node with ``DICOM_NODE_TWEAKS=tweaks`` (the code of the
    checkout ``root``, default this one); return (seconds, peak RSS in kB, (user, system)
    CPU seconds the node used meanwhile)."""
    node = NodeProcess(
        work / "node",
        {"logging": {"level": "WARNING"}},
        env={"DICOM_NODE_TWEAKS": tweaks},
        root=root,
    )
    node.start()
    try:
        user0, sys0 = cpu_split(node.pid)
        secs = send(files, "DICOM_NODE", node.port)
        user1, sys1 = cpu_split(node.pid)
        rss = node.peak_rss_kb()
        got = sum(1 for _ in (node.data_dir / "instances").rglob("*.dcm"))
        if got != len(files):
            raise RuntimeError(f"node stored {got} of {len(files)}")
        return secs, rss, (user1 - user0, sys1 - sys0)
    finally:
        node.stop()


def rate(n: int, secs: list[float]) -> float:
    """Instances per second of the median round."""
    return n / statistics.median(secs)


def main() -> None:
    from dicom_node.network.tweaks import TWEAKS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--ab", action="store_true", help="also run the node with each tweak off, and with none"
    )
    ap.add_argument(
        "--associations",
        type=int,
        default=1,
        help="concurrent storescu associations (the goals are for 1)",
    )
    ap.add_argument(
        "--storescp-max-pdu",
        type=int,
        default=131072,
        help="storescp's receive PDU (its largest allowed: 131072)",
    )
    ap.add_argument(
        "--per-association",
        type=int,
        default=0,
        help="instances per association, one association after another (a modality "
        "that sends each image on its own association: 1); 0: all on one",
    )
    ap.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (e.g. `git worktree add /tmp/base HEAD~1`) whose node runs "
        "in every round too: a same-run A/B of any code change",
    )
    args = ap.parse_args()
    global ASSOCIATIONS, PER_ASSOCIATION
    ASSOCIATIONS = args.associations
    PER_ASSOCIATION = args.per_association
    variants = ["all"]
    if args.ab:
        variants += [f"-{name}" for name in TWEAKS] + ["none"]
    if args.baseline:
        variants.append(BASELINE)
    with tempfile.TemporaryDirectory(prefix="bench-receive-") as tmp:
        tmpdir = Path(tmp)
        t0 = time.perf_counter()
        files = write_files(iter_ct_series(args.instances, rows=512, cols=512), tmpdir / "src")
        n = len(files)
        total_mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"{n} CT slices 512x512x16, {total_mb:.1f} MB "
            f"(generated in {time.perf_counter() - t0:.1f} s), "
            f"{ASSOCIATIONS} concurrent storescu stream(s), "
            f"{PER_ASSOCIATION or 'all'} instance(s) per association"
        )
        theirs: list[float] = []
        stock: list[float] = []
        node: dict[str, list[float]] = {v: [] for v in variants}
        rss: list[int] = []
        cpu: list[tuple[float, float]] = []  # the node's (user, system) s per round
        for r in range(args.rounds):
            work = tmpdir / f"round{r}"
            peers = ["storescp", "stock", *variants]
            if r % 2:  # alternate the order: nobody always gets the warmer page cache
                peers.reverse()
            for peer in peers:
                if peer == "storescp":
                    theirs.append(round_storescp(files, fresh(work), args.storescp_max_pdu))
                elif peer == "stock":
                    stock.append(round_stock_pynetdicom(files, fresh(work)))
                else:
                    root = args.baseline if peer == BASELINE else None
                    secs, kb, used = round_node(files, fresh(work), "all" if root else peer, root)
                    node[peer].append(secs)
                    if peer == "all":
                        rss.append(kb)
                        cpu.append(used)
            shutil.rmtree(work)
            print(
                f"round {r + 1}: storescp {theirs[-1]:.2f} s, stock pynetdicom "
                f"{stock[-1]:.2f} s, "
                + ", ".join(f"node[{v}] {node[v][-1]:.2f} s" for v in variants)
            )
        # After the rounds: its bulk writes would otherwise slow whatever runs next.
        durable = []
        for r in range(args.rounds):
            durable.append(round_durability(files, fresh(tmpdir / f"durable{r}")))
            shutil.rmtree(tmpdir / f"durable{r}")
        fsync_s = statistics.median(durable)
        ceiling = [t + fsync_s for t in theirs]
        ours = node["all"]
        print(f"(medians of {args.rounds} rounds; the machine may be shared: noisy)")
        print(f"storescp          : {rate(n, theirs):7.1f} instances/s (no fsync)")
        print(
            f"durable ceiling   : {rate(n, ceiling):7.1f} instances/s (storescp + measured "
            f"fsync {fsync_s / n * 1e3:.2f} ms/instance)"
        )
        print(f"stock pynetdicom  : {rate(n, stock):7.1f} instances/s (save_as, no fsync)")
        print(
            f"dicom-node        : {rate(n, ours):7.1f} instances/s "
            f"{total_mb / statistics.median(ours):.1f} MB/s (fsync, indexed)"
        )
        print(f"ratio node/durable ceiling : {rate(n, ours) / rate(n, ceiling):.2f}  (goal >= 0.8)")
        print(f"ratio node/stock pynetdicom: {rate(n, ours) / rate(n, stock):.2f}  (goal >= 1.0)")
        print(
            "within each round, node/durable ceiling: "
            + ", ".join(f"{c / o:.2f}" for c, o in zip(ceiling, ours, strict=True))
        )
        user = statistics.median(u for u, _ in cpu) / n * 1e3
        kernel = statistics.median(k for _, k in cpu) / n * 1e3
        print(
            f"node per instance: {statistics.median(ours) / n * 1e3:.2f} ms wall, CPU "
            f"user {user:.2f} + sys {kernel:.2f} ms"
        )
        print(f"node peak RSS: {max(rss) / 1024:.0f} MB")
        if args.ab:
            on = rate(n, ours)
            print(
                "A/B, node throughput with every tweak vs that one off (gain = on/off - 1; "
                "keep >= 15%):"
            )
            for v in variants[1:]:
                if v == BASELINE:
                    continue
                off = rate(n, node[v])
                per_round = ", ".join(
                    f"{o / a - 1:+.0%}" for a, o in zip(ours, node[v], strict=True)
                )
                label = "all tweaks" if v == "none" else v[1:]
                print(
                    f"  {label:11s}: off {off:6.1f} instances/s, gain {on / off - 1:+.0%} "
                    f"(per round {per_round})"
                )
        if args.baseline:
            base = node[BASELINE]
            per_round = ", ".join(f"{b / o - 1:+.0%}" for o, b in zip(ours, base, strict=True))
            print(
                f"this checkout vs {args.baseline}: {rate(n, ours):.1f} vs {rate(n, base):.1f} "
                f"instances/s, gain {rate(n, ours) / rate(n, base) - 1:+.0%} "
                f"(per round {per_round})"
            )


if __name__ == "__main__":
    main()
