#!/usr/bin/env bash
# Installs the published viewer code the tests run our SRs and WADO-RS frames through
# (tests/viewers/: OHIF's SR extension and DICOMweb data source (@ohif/extension-default),
# @ohif/core, the Cornerstone3D adapters and image loader, dcmjs), at the exact versions of tests/viewers/package-lock.json. Needs
# node >= 20 and npm (Debian's nodejs/npm packages when absent). Re-runs `npm ci` only
# when the lock file changed.
set -euo pipefail
cd "$(dirname "$0")/../tests/viewers"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing nodejs and npm (Debian packages)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "node $(node --version) is too old for tests/viewers (needs >= 20)" >&2
    exit 1
fi
stamp=node_modules/.lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "viewer packages present (tests/viewers, lock $want)"
    exit 0
fi
# .npmrc: legacy-peer-deps (the SR extension's peers include the whole OHIF app and
# React, which the harness does not load) and no engine-strict (the packages declare
# node >= 24; the code paths used run on node 20).
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
