#!/usr/bin/env bash
# Re-generate constraints.txt from the virtual environment the suite passed in (after adding a dependency:
# pip install -e '.[server,test]' into .venv, run the tests, then this).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# Versions the test suite passed with; used as pip install -c constraints.txt by scripts/test.sh,"
  echo "# scripts/demo.sh and .ci/run. Re-generate with scripts/freeze_constraints.sh."
  .venv/bin/python -m pip freeze --exclude-editable --all | grep -viE '^(pip|setuptools|wheel|garrison)=='
} > constraints.txt
