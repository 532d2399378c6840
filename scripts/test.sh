#!/usr/bin/env bash
# Installs everything the tests need (Debian peers + Python dev extras), lints, runs the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-system-deps.sh
scripts/install.sh dev
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
    echo "pytest collected no tests: failing (exit 5 is not a pass)" >&2
    exit 1
fi
exit $rc
