#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests (tests/), doc tests.
# Later issues add end-to-end tests with real proxies here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/vectors ]; then
  echo "error: ../shared/vectors is missing; the vector tests need the public test vectors beside the checkout" >&2
  exit 2
fi

cargo test --locked --all-targets
cargo test --locked --doc
