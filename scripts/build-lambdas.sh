#!/usr/bin/env bash
# Usage: scripts/build-lambdas.sh [--arch arm64|amd64] [--out DIR]
# Builds the Lambda functions (contract/: connect, disconnect, default, reaper)
# for the provided.al2023 runtime: DIR/<fn>/bootstrap, zipped as DIR/<fn>.zip.
# arm64 (Graviton) by default. Static, no RPC shim, trimmed and stripped.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=arm64
OUT=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --arch) ARCH=${2:?--arch needs arm64 or amd64}; shift 2 ;;
    --arch=*) ARCH=${1#--arch=}; shift ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "build-lambdas: unknown argument $1 (use --arch arm64|amd64, --out DIR)" >&2; exit 2 ;;
  esac
done
case "$ARCH" in arm64|amd64) ;; *) echo "build-lambdas: --arch must be arm64 or amd64, not $ARCH" >&2; exit 2 ;; esac
GO=${GO:-go}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
for fn in connect disconnect default reaper; do
  mkdir -p "$OUT/$fn"
  GOOS=linux GOARCH="$ARCH" CGO_ENABLED=0 "$GO" build -tags lambda.norpc -trimpath -ldflags "-s -w" \
    -o "$OUT/$fn/bootstrap" "./lambda/$fn/bootstrap"
  rm -f "$OUT/$fn.zip"
  if command -v zip >/dev/null 2>&1; then
    (cd "$OUT/$fn" && zip -q -X "$OUT/$fn.zip" bootstrap)
  else
    "$GO" run ./scripts/zipdir "$OUT/$fn.zip" "$OUT/$fn/bootstrap"
  fi
  size=$(wc -c <"$OUT/$fn.zip" | tr -d ' ')
  echo "build-lambdas: $OUT/$fn.zip ($ARCH, $size bytes)"
done
