#!/usr/bin/env python
"""Print the real-world corpus table: every pydicom / pydicom-data image through the demo
model (filters emptied) and the result writers, with dciodvfy errors per file.

    .venv/bin/python scripts/corpus_report.py [--out DIR] [--match SUBSTRING] [--no-check]

Exit status 1 when any file has an error attributable to the node or a crash.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.corpus import corpus_files, run_corpus, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="keep the written objects here")
    parser.add_argument(
        "--match",
        action="append",
        default=[],
        help="only files whose name contains this (repeatable)",
    )
    parser.add_argument("--no-check", action="store_true", help="skip dciodvfy")
    parser.add_argument("--details", action="store_true", help="list every node error")
    args = parser.parse_args()
    files = [f for f in corpus_files() if not args.match or any(m in f.name for m in args.match)]
    started = time.monotonic()
    outcomes = []
    for outcome in run_corpus(files, args.out, check=not args.no_check):
        outcomes.append(outcome)
        print(
            f"{outcome.file.name}: {outcome.status} {outcome.reason[:100]} "
            f"node_errors={len(outcome.node_errors)}",
            file=sys.stderr,
            flush=True,
        )
    print(table(outcomes))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "skipped", "failed", "crash")}
    bad = [o for o in outcomes if o.node_errors or o.status == "crash"]
    print(
        f"\n{len(outcomes)} files: {counts}; with node errors: {len(bad)}; "
        f"{time.monotonic() - started:.0f} s"
    )
    if args.details:
        for o in bad:
            print(f"\n{o.file.name}:")
            for line in o.node_errors:
                print(f"  {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
