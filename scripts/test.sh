#!/usr/bin/env bash
# The whole test suite: unit tests, integration tests (tests/), doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d ../shared/vectors ]; then
  echo "error: ../shared/vectors is missing; the vector tests need the public test vectors beside the checkout" >&2
  exit 2
fi

cargo test --locked --workspace --all-targets
cargo test --locked --workspace --doc
# Dependencies point down the layers: no import cycles in either crate.
python3 scripts/module-graph.py src
python3 scripts/module-graph.py crates/jwtgate-engine/src
# The latency plotter, on a histogram written by the binary the tests just built.
JWTGATE="${CARGO_TARGET_DIR:-target}/debug/jwtgate" scripts/test-plot-latency.sh
