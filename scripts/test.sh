#!/usr/bin/env bash
# Set up and run the whole test suite: system packages (PostgreSQL, Chromium) when missing,
# a virtual environment with Garrison, its server and test extras at the versions of constraints.txt,
# then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v lynis >/dev/null 2>&1 || need+=(lynis)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
# the sensor tests: network namespaces (ip, unshare), a failed su, accounts added and removed
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v useradd >/dev/null 2>&1 || need+=(passwd)
command -v su >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1 || need+=(util-linux)
# the protection tests: a real clamd with a signature database of their own
command -v clamd >/dev/null 2>&1 || need+=(clamav-daemon)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -c constraints.txt -e ".[server,test]"

exec .venv/bin/python -m pytest -n 2 --dist loadgroup "$@"
