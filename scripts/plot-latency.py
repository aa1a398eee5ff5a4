#!/usr/bin/env python3
"""Plot HdrHistogram percentile distributions (.hgrm) as latency by percentile.

Reads one or more files in HdrHistogram's classic text format, as written by
`jwtgate verify --histogram FILE`, by HdrHistogram's outputPercentileDistribution
and (after its "Detailed Percentile spectrum:" line) by `wrk2 --latency`, and
draws them the way HdrHistogram's online plotter does: percentile on the x axis,
on a log scale of 1/(1-p) labelled 0%, 90%, 99%, 99.9%, ...; latency on a linear
y axis from 0 to a round maximum. One line per file. The output is an SVG written
with the Python standard library only (no matplotlib needed).

Usage:
  scripts/plot-latency.py [options] FILE|LABEL=FILE ...

  scripts/plot-latency.py rs256.hgrm es256.hgrm                 # -> latency.svg
  scripts/plot-latency.py -o verify.svg --title "jwtgate verify" \\
      "RS256 2 threads=rs.hgrm" "ES256 2 threads=es.hgrm"
  scripts/plot-latency.py --input-unit ms --unit ms wrk2-output.txt
  scripts/plot-latency.py -o plot.png a.hgrm    # via rsvg-convert or ImageMagick

Options: -o OUT (default latency.svg; "-" is stdout), --title TEXT,
--max-percentile P (right edge of the plot, default 99.999), --unit us|ms (axis
unit), --input-unit us|ms (unit of the file's values: jwtgate writes µs, wrk2 ms),
--width/--height (pixels). A file's label is its basename without extension, or
LABEL in LABEL=FILE ("-" reads stdin). The legend shows each file's max latency.

The last row of a distribution (percentile 1.0, the maximum) has no place on a
1/(1-p) axis, nor do rows beyond --max-percentile: they are not drawn as points.
Instead each line is carried to the right edge of the plot at the latency of the
first row at or beyond --max-percentile (the value at that percentile; for most
files that is the max), and the max itself is shown in the legend.

Lines before the "Value Percentile TotalCount" header and after the
"#[Buckets ...]" footer are ignored (wrk2's report around the table); blank lines
and "#" comments are skipped. Any other malformed row, or a file with no rows,
is an error: exit status 2 with the file name and line number. A .png output is
converted with rsvg-convert or ImageMagick's convert; without them, exit 2.
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from xml.sax.saxutils import escape

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
           "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
HEADER = re.compile(r"^\s*Value\s*[ ,]\s*Percentile\s*[ ,]\s*TotalCount", re.I)
FOOTER = re.compile(r"^\s*(#\[Buckets|-{5,})")


class InputError(Exception):
    """A problem with an input file; reported as `plot-latency: ...`, exit 2."""


def parse_hgrm(text, name):
    """[(value, percentile)] from a percentile distribution; raises InputError."""
    lines = text.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if HEADER.match(line)), 0)
    rows = []
    for number, line in enumerate(lines[start:], start + 1):
        if FOOTER.match(line):
            break
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        fields = stripped.replace(",", " ").split()
        try:
            if len(fields) not in (3, 4):
                raise ValueError(f"expected 3 or 4 columns, found {len(fields)}")
            value, percentile = float(fields[0]), float(fields[1])
            int(fields[2])
            if len(fields) == 4:
                float(fields[3])  # 1/(1-p), recomputed; may be "inf" (wrk2)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"bad latency value {fields[0]!r}")
            if not 0.0 <= percentile <= 1.0:
                raise ValueError(f"percentile {fields[1]} is outside 0..1")
            if rows and percentile < rows[-1][1]:
                raise ValueError("percentiles go down")
        except ValueError as err:
            raise InputError(f"{name}:{number}: malformed row ({err}): {stripped!r}")
        rows.append((value, percentile))
    if not rows:
        raise InputError(f"{name}: no percentile distribution rows (empty file?)")
    return rows


def load(spec, divisor):
    """(label, rows) for FILE or LABEL=FILE, values divided by `divisor`."""
    label, path = None, spec
    if "=" in spec and not os.path.exists(spec):
        label, path = spec.split("=", 1)
    if label is None:
        label = "stdin" if path == "-" else os.path.splitext(os.path.basename(path))[0]
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
    except OSError as err:
        raise InputError(f"{path}: cannot read: {err.strerror}")
    rows = parse_hgrm(text, "<stdin>" if path == "-" else path)
    return label, [(value / divisor, p) for value, p in rows]


def to_x(percentile):
    """Position on the axis: log10(1/(1-p)); 0% -> 0, 90% -> 1, 99% -> 2, ..."""
    return -math.log10(1.0 - percentile)


def line_points(rows, clip):
    """(x, latency) points below `clip`, plus the value at `clip` at the edge."""
    points = [(to_x(p), v) for v, p in rows if p < clip]
    beyond = [v for v, p in rows if p >= clip]
    if beyond:
        points.append((to_x(clip), beyond[0]))
    return points


def nice_axis(top):
    """(axis maximum, step): a round maximum with about 5 to 10 grid steps."""
    if top <= 0:
        return 1.0, 0.2
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.ceil(top / step - 1e-9) * step, step


def number(value, step):
    """A tick label with as many decimals as the step needs."""
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step / 10 ** -decimals, 6) % 1:  # e.g. 2.5, 0.25
        decimals += 1
    return f"{value:.{decimals}f}"


def short(value):
    """A latency for the legend: 812, 48.5, 3.21."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def percent_label(percentile):
    text = f"{percentile * 100:.10f}".rstrip("0").rstrip(".")
    return f"{text}%"


def render(series, title, unit, clip, width, height):
    """The SVG document as a string. series: [(label, rows)]."""
    left, right, top, bottom = 78, 28, 52, 62
    pw, ph = width - left - right, height - top - bottom
    xmax = to_x(clip)
    lines = [(label, rows, line_points(rows, clip)) for label, rows in series]
    ymax, ystep = nice_axis(max((v for *_, pts in lines for _, v in pts), default=0))
    sx = lambda x: left + pw * x / xmax
    sy = lambda y: top + ph * (1 - y / ymax)
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" '
        'font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left + pw / 2}" y="30" text-anchor="middle" font-size="17" '
        f'font-weight="bold">{escape(title)}</text>',
        '<g stroke="#e0e0e0" stroke-width="1">',
    ]
    yticks = [i * ystep for i in range(int(round(ymax / ystep)) + 1)]
    xticks = [(float(k), percent_label(1 - 10.0 ** -k)) for k in range(int(xmax + 1e-9) + 1)]
    if sx(xmax) - sx(xticks[-1][0]) > 60:  # room for a label at the clipped edge
        xticks.append((xmax, percent_label(clip)))
    out += [f'<line x1="{left}" x2="{left + pw}" y1="{sy(y):.1f}" y2="{sy(y):.1f}"/>'
            for y in yticks]
    out += [f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{top + ph}"/>'
            for x, _ in xticks]
    out.append("</g>")
    out += [f'<text x="{left - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">'
            f"{number(y, ystep)}</text>" for y in yticks]
    out += [f'<text x="{sx(x):.1f}" y="{top + ph + 18}" text-anchor="middle">'
            f"{escape(text)}</text>" for x, text in xticks]
    out += [
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>',
        f'<text x="{left + pw / 2}" y="{height - 16}" text-anchor="middle" font-size="13">'
        "percentile</text>",
        f'<text transform="translate(20 {top + ph / 2}) rotate(-90)" text-anchor="middle" '
        f'font-size="13">latency ({unit})</text>',
    ]
    for i, (label, rows, points) in enumerate(lines):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        out.append(f'<g stroke="{colour}" fill="{colour}"><title>{escape(label)}</title>')
        out.append(f'<polyline points="{coords}" fill="none" stroke-width="2" '
                   'stroke-linejoin="round"/>')
        out += [f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" stroke="none"/>'
                for x, y in points]
        out.append("</g>")
    entries = [f"{label} (max {short(max(v for v, _ in rows))} {unit})"
               for label, rows, _ in lines]
    box_w = 34 + 7 * max(len(text) for text in entries)
    box_h = 10 + 18 * len(entries)
    bx, by = left + 12, top + 12
    out.append(f'<rect x="{bx}" y="{by}" width="{box_w}" height="{box_h}" fill="white" '
               'fill-opacity="0.9" stroke="#999"/>')
    for i, text in enumerate(entries):
        y = by + 18 * i + 18
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<line x1="{bx + 8}" x2="{bx + 26}" y1="{y - 4}" y2="{y - 4}" '
                   f'stroke="{colour}" stroke-width="3"/>')
        out.append(f'<text x="{bx + 32}" y="{y}">{escape(text)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def write_png(svg, path):
    """Convert with rsvg-convert or ImageMagick; InputError if neither works."""
    tools = [("rsvg-convert", lambda src: ["rsvg-convert", "-o", path, src]),
             ("magick", lambda src: ["magick", src, path]),
             ("convert", lambda src: ["convert", src, path])]
    available = [(name, cmd) for name, cmd in tools if shutil.which(name)]
    if not available:
        raise InputError(f"{path}: PNG output needs rsvg-convert (librsvg2-bin) or "
                         "ImageMagick on PATH; neither found (write .svg instead)")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "plot.svg")
        with open(src, "w", encoding="utf-8") as handle:
            handle.write(svg)
        errors = []
        for name, cmd in available:
            done = subprocess.run(cmd(src), capture_output=True, text=True)
            if done.returncode == 0 and os.path.exists(path):
                return
            errors.append(f"{name}: {(done.stderr or done.stdout).strip()[:200]}")
    raise InputError(f"{path}: could not convert to PNG: " + "; ".join(errors))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", metavar="FILE|LABEL=FILE",
                        help=".hgrm files (jwtgate verify --histogram, wrk2 --latency)")
    parser.add_argument("-o", "--output", default="latency.svg",
                        help="output .svg (or .png, converted); - for stdout "
                             "(default: %(default)s)")
    parser.add_argument("--title", default="Latency by Percentile Distribution")
    parser.add_argument("--max-percentile", type=float, default=99.999, metavar="P",
                        help="right edge of the x axis, in percent (default: %(default)s)")
    parser.add_argument("--unit", choices=["us", "ms"], default="us",
                        help="latency unit of the y axis (default: %(default)s)")
    parser.add_argument("--input-unit", choices=["us", "ms"], default="us",
                        help="unit of the values in the files: jwtgate writes us, "
                             "wrk2 ms (default: %(default)s)")
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=540)
    args = parser.parse_args(argv)
    if not 0 < args.max_percentile < 100:
        parser.error("--max-percentile must be above 0 and below 100")
    if args.width < 300 or args.height < 200:
        parser.error("--width must be at least 300 and --height at least 200")
    scale = {("us", "us"): 1, ("ms", "ms"): 1, ("us", "ms"): 1000, ("ms", "us"): 0.001}
    try:
        series = [load(spec, scale[(args.input_unit, args.unit)]) for spec in args.files]
        svg = render(series, args.title, "µs" if args.unit == "us" else "ms",
                     args.max_percentile / 100, args.width, args.height)
        if args.output == "-":
            sys.stdout.write(svg)
        elif args.output.lower().endswith(".png"):
            write_png(svg, args.output)
        else:
            with open(args.output, "w", encoding="utf-8") as handle:
                handle.write(svg)
    except InputError as err:
        print(f"plot-latency: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"plot-latency: {args.output}: {err.strerror}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
