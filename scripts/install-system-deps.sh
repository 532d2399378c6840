#!/usr/bin/env bash
# Installs the Debian packages the node's tests talk to: DCMTK (storescu, storescp,
# echoscu, dsrdump), dicom3tools (dciodvfy), Orthanc and its DICOMweb plugin
# (orthanc-dicomweb, for STOW-RS delivery tests), Prometheus (scrapes /metrics in a
# test) and the PostgreSQL and Redis servers (the tests start their own). Needs root
# (or sudo).
set -euo pipefail
pkgs=(dcmtk dicom3tools orthanc orthanc-dicomweb postgresql redis-server prometheus
      python3-venv fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: ${pkgs[*]}"
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing system packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# The Debian packages start their own Orthanc and PostgreSQL services; tests start their
# own on free ports.
if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now orthanc postgresql redis-server prometheus >/dev/null 2>&1 || true
fi
