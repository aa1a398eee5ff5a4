#!/usr/bin/env bash
# Fuzzes every parser of untrusted input: each target in fuzz/fuzz_targets/
# runs for SECONDS (default 60), seeded from the committed fuzz/seeds/<target>/
# into the working corpus fuzz/corpus/<target>/ (gitignored, kept between runs
# so coverage accumulates). Prints executions and exec/s per target; exits
# non-zero if any target crashed, hung, leaked past the memory limit or failed
# to run, with the reproducer's path in the output.
#
#   scripts/fuzz.sh [SECONDS]          all targets
#   scripts/fuzz.sh SECONDS TARGET...  only these
#
# A finding is reproduced with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none -a TARGET fuzz/artifacts/TARGET/crash-...
# and then belongs in tests/integration/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned so that a CI run and a developer's run build the same harness.
cargo_fuzz_version=0.13.2

# cargo fuzz passes nightly-only flags (-Cpasses=sancov-module, -Z...);
# RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
export RUSTC_BOOTSTRAP=1

# Build settings, the same for `build` and `run` so that `run` rebuilds nothing:
# - no sanitizer: the library forbids unsafe code, so AddressSanitizer would
#   mostly watch the C inside the crypto libraries, and it costs build time
#   and executions per second;
# - debug assertions and overflow checks (also set in fuzz/Cargo.toml): an
#   arithmetic overflow on untrusted input is a finding, not a silent wrap;
# - release optimisation (cargo fuzz's default), one codegen unit: more
#   executions per second for the same build.
build_flags=(--sanitizer none --debug-assertions)
# The instrumented build cannot share target/ with the tests (other RUSTFLAGS),
# so it goes to fuzz/target/, or to FUZZ_TARGET_DIR, e.g. a folder kept across
# clean checkouts so that only jwtgate itself is rebuilt.
if [ -n "${FUZZ_TARGET_DIR:-}" ]; then
  build_flags+=(--target-dir "$FUZZ_TARGET_DIR")
fi

# libFuzzer settings shared by every target:
# - a unit slower than 10 s is a hang, and reported as a finding;
# - more than 2 GiB of memory is an OOM, also a finding (no parser here needs
#   more than a few MiB for inputs of these sizes);
# - the final stats give the executions and exec/s printed below.
common_args=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

# Longest input per target: a little past each parser's own limit, so that the
# limit checks themselves are exercised, and no more (longer inputs are slower
# and find nothing new).
max_len() {
  case "$1" in
    request_head | token_sources | head_scan) echo 17408 ;; # 16 KiB head limit, plus 1 KiB
    verify_token) echo 17408 ;; # 16 KiB default token limit, plus 1 KiB
    canonical_path | chunked_body) echo 4096 ;;
    json_tape | config_toml | revocation_file) echo 8192 ;;
    jwks_keyset) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

# The whole run is one function, read before it starts: editing this script
# while it runs (a long run) cannot change what the running copy does next.
main() {
  seconds=${1:-60}
  shift || true

  if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
    echo "== installing cargo-fuzz $cargo_fuzz_version"
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
  fi

  if [ $# -gt 0 ]; then
    targets=("$@")
  else
    mapfile -t targets < <(cargo fuzz list)
  fi

  echo "== building the fuzz targets"
  cargo fuzz build "${build_flags[@]}"

  failed=()
  summary=()
  for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    log=fuzz/artifacts/$target.log
    mkdir -p "$corpus" "$artifacts"
    echo "== $target: ${seconds}s, max_len $(max_len "$target")"
    # The working corpus comes first: libFuzzer writes what it finds there and
    # only reads the seeds.
    status=0
    cargo fuzz run "${build_flags[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
      "${common_args[@]}" -max_total_time="$seconds" -max_len="$(max_len "$target")" \
      -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus_size=$(find "$corpus" -type f | wc -l)
    line=$(printf '%-16s %12s execs %9s exec/s %6s corpus files' "$target" "${runs:-?}" "${rate:-?}" "$corpus_size")
    if [ "$status" -ne 0 ]; then
      line="$line  FAILED (exit $status)"
      failed+=("$target")
      # The panic or libFuzzer's error, and where the reproducer was written.
      grep -E "panicked at|^ERROR: libFuzzer|==[0-9]+== ERROR|Test unit written to|^SUMMARY" "$log" | head -n 20 || true
      echo "full log: $log"
    fi
    echo "$line"
    summary+=("$line")
  done

  echo "== fuzz summary (${seconds}s per target)"
  printf '%s\n' "${summary[@]}"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]}; reproducers in fuzz/artifacts/<target>/" >&2
    exit 1
  fi
}

main "$@"
