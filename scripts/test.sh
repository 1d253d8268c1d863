#!/usr/bin/env bash
# Set up (quick when already done), lint, and run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -k masks
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q "$@"
