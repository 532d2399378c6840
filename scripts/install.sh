#!/usr/bin/env bash
# Creates .venv and installs dicom-node into it. Extra arguments are pip extras, e.g.
# `scripts/install.sh dev torch`.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=""
if [ $# -gt 0 ]; then extras="[$(IFS=,; echo "$*")]"; fi
.venv/bin/python -m pip install -q -e ".${extras}"
echo "installed: $(.venv/bin/dicom-node --version)"
