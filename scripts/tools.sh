#!/usr/bin/env bash
# Installs the external programs the tests drive, only when missing: dynalite
# and wscat from npm and the AWS Lambda Runtime Interface Emulator from the Go
# module proxy into .tools/ (git-ignored), and tmux from Debian packages.
# Prints nothing on a warm machine.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools
DYNALITE_VERSION=4.0.0
WSCAT_VERSION=6.1.0
RIE_VERSION=v0.0.0-20261030222936-bef5c4ba774d

# tmux drives the terminal tests (progress bar, dashboard) as a person sees them.
if ! command -v tmux >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tools: installing tmux (apt-get)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux) >&2
  else
    echo "tools: tmux is required for the terminal tests: install it (e.g. apt-get install tmux)" >&2
    exit 1
  fi
fi

need_npm=0
[ -x "$TOOLS/node/node_modules/.bin/dynalite" ] || need_npm=1
[ -x "$TOOLS/node/node_modules/.bin/wscat" ] || need_npm=1
if [ "$need_npm" = 1 ]; then
  command -v npm >/dev/null || { echo "tools: npm is required (install Node.js 20+)" >&2; exit 1; }
  echo "tools: installing dynalite@$DYNALITE_VERSION wscat@$WSCAT_VERSION into .tools/node" >&2
  mkdir -p "$TOOLS/node"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/node" \
    "dynalite@$DYNALITE_VERSION" "wscat@$WSCAT_VERSION" >&2
fi
if [ ! -x "$TOOLS/bin/aws-lambda-rie" ]; then
  echo "tools: installing aws-lambda-rie@$RIE_VERSION into .tools/bin" >&2
  GOBIN="$TOOLS/bin" go install "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$RIE_VERSION" >&2
fi
