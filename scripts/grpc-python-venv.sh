#!/usr/bin/env bash
# The Python of the gRPC interoperability test (tests/integration/grpc_python.rs):
# a venv holding exactly tests/grpc/requirements.txt, installed from wheels only
# (nothing is compiled, so the step takes seconds). The test looks for it at
# /opt/jwtgate/grpc-python, the default here; another path is for trying a
# change (point JWTGATE_GRPC_PYTHON at its bin/python).
#
# Idempotent: a venv that was made from the same requirements file and still
# imports the packages is left alone; any other is made anew, so a changed pin
# or a venv left broken by a removed interpreter is replaced, never patched.
#
# Needs python3 with venv and ensurepip (Debian: python3-venv; .ci/run
# installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${1:-/opt/jwtgate/grpc-python}"
requirements=tests/grpc/requirements.txt
# Written last, so that a half-made venv never looks made.
stamp="$venv/jwtgate-requirements.txt"
imports_ok() {
  "$venv/bin/python" tests/grpc/envoy_client.py --imports-only 2>/dev/null
}

if cmp -s "$requirements" "$stamp" && imports_ok; then
  echo "$venv: up to date with $requirements"
  exit 0
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  echo "error: python3 cannot make a venv with pip (Debian: apt-get install python3-venv)" >&2
  exit 1
fi
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
  --only-binary :all: --requirement "$requirements"
# Shows the import error, if any, and stops here (set -e).
"$venv/bin/python" tests/grpc/envoy_client.py --imports-only
cp "$requirements" "$stamp"
echo "$venv: installed $(grep -v '^#' "$requirements" | paste -sd ' ')"
