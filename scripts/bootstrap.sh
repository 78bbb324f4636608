#!/usr/bin/env bash
# Create .venv/ at the repo root from a pinned, hashed lock file (idempotent).
#   scripts/bootstrap.sh requirements.lock       engine + embedded S3 (enough for `ingest demo`)
#   scripts/bootstrap.sh requirements-dev.lock   everything: Airflow, test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."
lock=${1:?usage: scripts/bootstrap.sh LOCKFILE}
python=${PYTHON:-python3}
uv_version=0.13.9

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(basename "$lock")-$(sha256sum "$lock" pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then
  .venv/bin/python -m compileall -q -j 0 src dev dags >/dev/null  # the project's own, after edits
  exit 0
fi
if [ ! -x .venv/bin/uv ] || [ "$(.venv/bin/uv --version | cut -d' ' -f2)" != "$uv_version" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$uv_version"
fi
echo "bootstrap: installing $lock into .venv"
# Bytecode compiled at install: without it every process (`ingest`, its extraction
# workers, each Airflow task) compiles every module it imports from source again where
# PYTHONDONTWRITEBYTECODE is set, seconds per process.
.venv/bin/uv pip install --quiet --python .venv/bin/python --require-hashes -r "$lock"
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps -e .
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# a few packages ship files that are not Python 3 (templates, fixtures): not an error here
.venv/bin/python -m compileall -q -j 0 "$site" >/dev/null || true
.venv/bin/python -m compileall -q -j 0 src dev dags >/dev/null
# and dateparser's locale patterns, compiled once into the user's cache (see the README's
# Performance section) instead of in every extraction process's first second
.venv/bin/python -m ingest.warmup
touch "$stamp"
