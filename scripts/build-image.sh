#!/usr/bin/env bash
# Builds jwtgate's container image FROM scratch: the binary, the shared
# libraries it links (from `ldd`), Debian's CA bundle, /etc/passwd and
# /etc/group naming the non-root user 65532, /etc/nsswitch.conf. No shell, no
# package manager, nothing else.
#
#   scripts/build-image.sh                       # cargo build --release, then the image jwtgate:VERSION
#   scripts/build-image.sh --binary PATH --tag NAME:TAG
#   scripts/build-image.sh --binary PATH --rootfs-only DIR
#
# With podman or docker, whichever is found first (--engine picks one). The
# image's last stage is deploy/container/Containerfile, built on the root
# filesystem assembled here; deploy/container/Dockerfile (for machines that can
# pull a Rust image) runs this script with --rootfs-only in its build stage and
# ends with the same lines, so both images hold the same files
# (tests/integration/image.rs checks the two files agree and runs the image's
# filesystem).
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
tag=""
rootfs_only=""
engine=""
usage() {
  sed -n '/^#   scripts/s/^#   //p' "$0" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --tag) tag="${2:?--tag needs a name}"; shift 2 ;;
    --rootfs-only) rootfs_only="${2:?--rootfs-only needs a directory}"; shift 2 ;;
    --engine) engine="${2:?--engine needs podman or docker}"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "build-image.sh: unknown argument $1" >&2; usage ;;
  esac
done

if [ -z "$binary" ]; then
  cargo build --release --locked
  binary=target/release/jwtgate
fi
[ -x "$binary" ] || { echo "build-image.sh: $binary is not an executable" >&2; exit 1; }
# The CA bundle of Debian's ca-certificates: for `ca_file` settings that add an
# organisation's CA (jwtgate trusts Mozilla's roots, built in, without one).
ca_bundle=/etc/ssl/certs/ca-certificates.crt
[ -s "$ca_bundle" ] || {
  echo "build-image.sh: no CA bundle at $ca_bundle (Debian: apt-get install ca-certificates)" >&2
  exit 1
}

# assemble_rootfs DIR: the image's whole filesystem.
assemble_rootfs() {
  local root="$1"
  if [ -e "$root" ] && [ -n "$(ls -A "$root")" ]; then
    echo "build-image.sh: $root is not empty" >&2
    exit 1
  fi
  install -d -m 0755 "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/etc/jwtgate"
  # Debug sections off (the release profile keeps line tables for backtraces
  # on a developer's machine); symbols stay, so a panic still names functions.
  objcopy --strip-debug "$binary" "$root/usr/local/bin/jwtgate"
  chmod 0755 "$root/usr/local/bin/jwtgate"

  # Each library the dynamic loader resolves, and the loader itself, at the
  # path the binary names. A statically linked binary needs none.
  local ldd_out
  if ldd_out="$(ldd "$binary" 2>&1)"; then
    if grep -q "not found" <<<"$ldd_out"; then
      echo "build-image.sh: a library of $binary is missing:" >&2
      echo "$ldd_out" >&2
      exit 1
    fi
    local lib
    for lib in $(awk '/=> \// { print $3 } /^[[:space:]]*\// { print $1 }' <<<"$ldd_out"); do
      install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
    done
    # Host name lookups (a jwks_url's host) load these at run time, so ldd
    # does not list them: before glibc 2.34 they are the files and DNS
    # modules themselves, since then small stubs (libc has both built in).
    local libc_dir nss
    libc_dir="$(dirname "$(awk '/libc\.so/ { print $3 }' <<<"$ldd_out")")"
    for nss in libnss_files.so.2 libnss_dns.so.2 libresolv.so.2; do
      if [ -e "$libc_dir/$nss" ]; then
        install -D -m 0755 "$(readlink -f "$libc_dir/$nss")" "$root$libc_dir/$nss"
      fi
    done
  elif ! grep -q "not a dynamic executable" <<<"$ldd_out"; then
    echo "build-image.sh: ldd $binary: $ldd_out" >&2
    exit 1
  fi

  install -m 0644 "$ca_bundle" "$root/etc/ssl/certs/ca-certificates.crt"
  # 65532 is the conventional "nonroot" of distroless images; no login shell
  # exists to name.
  printf 'root:x:0:0:root:/:/nonexistent\njwtgate:x:65532:65532:jwtgate:/nonexistent:/nonexistent\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\njwtgate:x:65532:\n' >"$root/etc/group"
  # Host names of jwks_url resolve through the runtime's /etc/hosts, then DNS.
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
  chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"
}

if [ -n "$rootfs_only" ]; then
  assemble_rootfs "$rootfs_only"
  echo "build-image.sh: root filesystem in $rootfs_only"
  exit 0
fi

if [ -z "$engine" ]; then
  for candidate in podman docker; do
    if command -v "$candidate" >/dev/null; then engine="$candidate"; break; fi
  done
fi
[ -n "$engine" ] || {
  echo "build-image.sh: neither podman nor docker found (Debian: apt-get install podman)" >&2
  exit 1
}

version="$("$binary" --version | awk 'NR == 1 { print $2 }')"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
[ -n "$tag" ] || tag="jwtgate:$version"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
assemble_rootfs "$context/rootfs"
cp deploy/container/Containerfile "$context/Containerfile"
"$engine" build --quiet \
  --tag "$tag" \
  --label "org.opencontainers.image.title=jwtgate" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.licenses=Apache-2.0" \
  --file "$context/Containerfile" "$context" >/dev/null
size="$("$engine" image inspect --format '{{.Size}}' "$tag")"
echo "build-image.sh: built $tag with $engine ($((size / 1024 / 1024)) MiB)"
