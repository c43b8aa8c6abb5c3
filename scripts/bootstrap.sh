#!/usr/bin/env bash
# Install what cosmos-archive needs on a fresh machine: Python 3.11 venv + pinned requirements, npm packages.
# Idempotent and quick when nothing changed (a stamp of requirements.txt / package-lock.json is kept).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need node || ! need npm; then
  if need apt-get && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing Node.js and npm with apt-get" >&2
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "bootstrap: node and npm are required (Node.js 20); install them, e.g. apt-get install nodejs npm" >&2
    exit 1
  fi
fi
python="${PYTHON:-python3.11}"
need "$python" || python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "bootstrap: Python 3.11 is required (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=".venv/.requirements.sha256"
want="$(cat requirements.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python requirements into .venv (about a minute)" >&2
  "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  echo "$want" > "$stamp"
fi

npm_stamp="node_modules/.package-lock.sha256"
npm_want="$(cat package-lock.json | sha256sum | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_want" ]; then
  echo "bootstrap: installing npm packages (cosmosdb-server, azurite)" >&2
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_want" > "$npm_stamp"
fi
