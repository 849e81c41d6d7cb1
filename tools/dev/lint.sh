#!/usr/bin/env bash
# The linter, the formatter's check and the type checker over the repository, as tests/run.sh
# runs them before pytest (so CI does) (pyproject.toml configures them; docs/conventions.md says what is strict
# where). Needs .venv (built by tests/run.sh). Fix what ruff can with:
#   .venv/bin/ruff check --fix . && .venv/bin/ruff format .
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=.venv/bin
started=$(date +%s)
"$bin/ruff" check .            # every tracked Python file; .gitignore'd trees are skipped
"$bin/ruff" format --check .
"$bin/mypy"                    # package/visionpack (pyproject.toml [tool.mypy] packages)
echo "[lint] ruff check, ruff format --check, mypy: clean in $(( $(date +%s) - started )) s"
