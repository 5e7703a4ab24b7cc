#!/usr/bin/env bash
# Installs what building and testing pipeline needs on Debian, when missing.
# Run as root; does nothing when everything is there.
set -euo pipefail

packages=(postgresql-15 postgresql-server-dev-15 postgresql-15-cron libzstd-dev
          pkg-config make gcc libipc-run-perl perl prometheus sqlsmith pg-bsd-indent
          prometheus-postgres-exporter libcurl4-openssl-dev libhttp-daemon-perl
          debhelper fakeroot dpkg-dev build-essential postgresql-server-dev-all
          postgresql-15-pgtap)
# JSON Schema validator of the OpenLineage events (test/openlineage/validate.js)
npm_packages=(ajv@8.20.0 ajv-formats@3.0.1)

# install_npm_packages: the validator's modules, globally, when missing.
install_npm_packages() {
    NODE_PATH=$(npm root -g 2>/dev/null) node -e "require('ajv/dist/2020'); require('ajv-formats')" \
        2>/dev/null && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing npm packages: ${npm_packages[*]} (run as root to install them)" >&2
        exit 1
    fi
    echo "installing from npm: ${npm_packages[*]}"
    npm install --global --no-fund --no-audit "${npm_packages[@]}" >/dev/null
}

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js may come from elsewhere than Debian: what counts is the commands.
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
    install_npm_packages
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_npm_packages
