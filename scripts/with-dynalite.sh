#!/usr/bin/env bash
# Usage: scripts/with-dynalite.sh CMD [ARGS...]
# Starts dynalite (in memory) on a free loopback port, runs CMD with
# STREAMER_TEST_DYNAMODB_ENDPOINT pointing at it, and stops dynalite on every
# exit path, passing on CMD's exit code.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/tools.sh
PORT=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
LOG=$(mktemp -t dynalite.XXXXXX.log)
"$ROOT/.tools/node/node_modules/.bin/dynalite" --host 127.0.0.1 --port "$PORT" \
  --createTableMs 0 --deleteTableMs 0 --updateTableMs 0 >"$LOG" 2>&1 &
DPID=$!
cleanup() { kill "$DPID" 2>/dev/null || true; wait "$DPID" 2>/dev/null || true; rm -f "$LOG"; }
trap cleanup EXIT INT TERM
up() { node -e 'fetch(process.argv[1]).then(()=>process.exit(0),()=>process.exit(1))' "http://127.0.0.1:$PORT/" 2>/dev/null; }
for _ in $(seq 1 100); do
  if up; then break; fi
  if ! kill -0 "$DPID" 2>/dev/null; then echo "dynalite failed to start:" >&2; cat "$LOG" >&2; exit 1; fi
  sleep 0.1
done
up || { echo "dynalite did not answer on 127.0.0.1:$PORT" >&2; exit 1; }
echo "dynalite: http://127.0.0.1:$PORT" >&2
export STREAMER_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$PORT"
export STREAMER_TEST_RIE="$ROOT/.tools/bin/aws-lambda-rie"
export STREAMER_TEST_WSCAT="$ROOT/.tools/node/node_modules/.bin/wscat"
set +e
"$@"
rc=$?
set -e
exit $rc
