#!/usr/bin/env bash
# Installs what building and testing pipeline needs on Debian, when missing.
# Run as root; does nothing when everything is there.
set -euo pipefail

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron libzstd-dev
          pkg-config make gcc libipc-run-perl perl prometheus)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
