#!/usr/bin/env bash
# Installs everything the tests need (Debian peers, viewer code from npm, Python dev extras), lints, runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
scripts/install-node-deps.sh  # the viewers' published code (tests/viewers)
scripts/install.sh dev scale  # scale: psycopg (PostgreSQL tests), celery + redis (workers)
# The torchxrayvision importer's test exports xrv's architecture (untrained) and compares
# with PyTorch. Pinned, torch first: an unpinned torch or torchvision pulls CUDA builds.
.venv/bin/python -m pip install -q "torch==2.13.0" "torchvision==0.28.*" torchxrayvision
.venv/bin/ruff check .
.venv/bin/ruff format --check .
set +e
# Two workers, each taking whole files (module fixtures run once): most tests wait on
# peers and processes, so the run takes ~17 of the ~27 minutes it took on one.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: failing (exit 5 is not a pass)" >&2
    exit 1
fi
exit $rc
