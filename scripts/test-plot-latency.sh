#!/usr/bin/env bash
# Tests scripts/plot-latency.py: plots a synthetic .hgrm fixture and a wrk2-style
# report, plus a real one from `jwtgate verify --histogram` when a built binary is
# there ($JWTGATE, else target/release/jwtgate, else target/debug/jwtgate; none is
# built here), and checks the SVG and the errors. A few seconds; no network.
#   scripts/test-plot-latency.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plot="scripts/plot-latency.py"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAIL: $1" >&2; }
check() { # $1 = description; the rest = command that must succeed
  local what="$1"; shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
quietly() { "$@" >/dev/null; }
well_formed() { python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$1"; }
expect_error() { # $1 = description, $2 = text stderr must hold; the rest = plotter args
  local what="$1" needle="$2" rc=0; shift 2
  python3 "$plot" "$@" >"$work/out" 2>"$work/err" || rc=$?
  if [ "$rc" -eq 2 ] && grep -qF -- "$needle" "$work/err"; then
    ok "$what"
  else
    fail "$what (exit $rc, stderr: $(cat "$work/err"))"
  fi
}

# The format jwtgate writes (src/latency.rs percentile_distribution), in µs.
cat >"$work/synthetic.hgrm" <<'EOF'
       Value     Percentile TotalCount 1/(1-Percentile)

      12.345 0.000000000000          1           1.00
      15.000 0.500000000000          2           2.00
      20.000 0.750000000000          3           4.00
      40.000 0.875000000000          4           8.00
      40.000 1.000000000000          4
#[Mean    =       20.000, StdDeviation   =       12.000]
#[Max     =       40.000, Total count    =            4]
#[Buckets =           27, SubBuckets     =         2048]
EOF

# wrk2 --latency: the table (in ms, "inf" on the last row) inside a wider report.
cat >"$work/wrk2.txt" <<'EOF'
Running 10s test @ http://127.0.0.1:8080/
  Latency Distribution (HdrHistogram - Recorded Latency)
 50.000%    1.06ms
  Detailed Percentile spectrum:
       Value   Percentile   TotalCount 1/(1-Percentile)

       0.240     0.000000            1         1.00
       1.058     0.500000         5007         2.00
       1.823     0.900000         9003        10.00
       6.500     0.999000         9991      1000.00
      12.663     1.000000        10001          inf
#[Mean    =        1.088, StdDeviation   =        0.614]
#[Max     =       12.656, Total count    =        10001]
#[Buckets =           27, SubBuckets     =         2048]
----------------------------------------------------------
  10001 requests in 10.00s, 1.18MB read
EOF

# A real distribution from the binary, if one is built.
bin="${JWTGATE:-target/release/jwtgate}"
[ -x "$bin" ] || bin="target/debug/jwtgate"
second="$work/synthetic.hgrm"
if [ -x "$bin" ]; then
  "$bin" keygen --alg ES256 --kid plot --out "$work" >/dev/null
  "$bin" mint --key "$work/plot.pk8.pem" --alg ES256 --iss https://idp.example/ --aud api \
    --sub user --ttl 3600 --count 500 >"$work/tokens"
  "$bin" verify --jwks "$work/plot.jwks.json" --issuer https://idp.example/ --audience api \
    --input "$work/tokens" --no-progress --quiet --histogram "$work/es256-real.hgrm" >/dev/null
  second="$work/es256-real.hgrm"
  echo "using a real histogram from $bin"
else
  cp "$work/synthetic.hgrm" "$work/es256-real.hgrm"
  echo "no jwtgate binary built ($bin): using the synthetic fixture twice"
fi

check "--help exits 0" quietly python3 "$plot" --help

svg="$work/plot.svg"
rc=0
python3 "$plot" -o "$svg" --title "test <plot> & title" "synthetic run=$work/synthetic.hgrm" \
  "$work/es256-real.hgrm" 2>"$work/err" || rc=$?
if [ "$rc" -eq 0 ] && [ -s "$svg" ]; then
  ok "two files plot, exit 0"
else
  fail "two files plot (exit $rc: $(cat "$work/err"))"
fi
check "output is well-formed XML" well_formed "$svg"
check "legend holds the LABEL=FILE label" grep -qF "synthetic run (max 40 µs)" "$svg"
check "legend holds the basename label" grep -qF ">es256-real (max " "$svg"
check "axis is labelled in µs" grep -qF "latency (µs)" "$svg"
check "x ticks run 0% to 99.999%" grep -qF ">99.999%<" "$svg"
check "two polylines" test "$(grep -c "<polyline" "$svg")" -eq 2
[ "$second" = "$work/synthetic.hgrm" ] || check "real histogram has rows" test "$(grep -c '^ *[0-9]' "$second")" -gt 5

if python3 "$plot" -o "$work/wrk2.svg" --input-unit ms --unit ms --max-percentile 99.9 \
  "$work/wrk2.txt" 2>"$work/err"; then
  ok "wrk2 report plots"
else
  fail "wrk2 report plots: $(cat "$work/err")"
fi
check "wrk2 plot is well-formed XML" well_formed "$work/wrk2.svg"
check "wrk2 axis is labelled in ms" grep -qF "latency (ms)" "$work/wrk2.svg"
check "wrk2 legend shows its max" grep -qF "wrk2 (max 12.7 ms)" "$work/wrk2.svg"
python3 "$plot" -o "$work/ms.svg" --unit ms "$work/synthetic.hgrm"
check "--unit ms converts the µs of a jwtgate file" grep -qF "synthetic (max 0.04 ms)" "$work/ms.svg"

# Errors: exit 2 naming the file (and the line).
cp "$work/synthetic.hgrm" "$work/broken.hgrm"
sed -i 's/^      20.000 0.750000000000 .*/      20.000 zero-point-seven-five 3 4.00/' "$work/broken.hgrm"
expect_error "malformed row: exit 2, file and line named" "broken.hgrm:5:" \
  -o "$work/x.svg" "$work/synthetic.hgrm" "$work/broken.hgrm"
: >"$work/empty.hgrm"
expect_error "empty file: exit 2, file named" "empty.hgrm" -o "$work/x.svg" "$work/empty.hgrm"
expect_error "missing file: exit 2, file named" "missing.hgrm" -o "$work/x.svg" "$work/missing.hgrm"
# PNG output without rsvg-convert or ImageMagick on PATH.
python="$(python3 -c 'import sys; print(sys.executable)')"
rc=0
PATH=/nonexistent "$python" "$plot" -o "$work/x.png" "$work/synthetic.hgrm" 2>"$work/err" || rc=$?
if [ "$rc" -eq 2 ] && grep -qF "rsvg-convert" "$work/err"; then
  ok "PNG without converters: exit 2"
else
  fail "PNG without converters (exit $rc)"
fi
if command -v rsvg-convert >/dev/null; then
  python3 "$plot" -o "$work/x.png" "$work/synthetic.hgrm" || true
  check "PNG through rsvg-convert" test "$(head -c 4 "$work/x.png" 2>/dev/null | tail -c 3)" = "PNG"
fi

echo "plot-latency: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
