#!/usr/bin/env bash
# Usage: scripts/deploy.sh STACK [pulumi up flags...]
# Deploys the streamer AWS stack STACK (dev, staging, production — the
# Pulumi.<STACK>.yaml files in deployment/pulumi): checks prerequisites and
# the Pulumi login, creates STACK when the backend has none, builds the
# Lambda zips (arm64) into dist/, runs `pulumi up --stack STACK`, then saves
# the stack's outputs as the CLI's profile (streamer --stack STACK).
# Extra arguments go to pulumi up (e.g. --yes, --diff). See deployment/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deploy: $*" >&2; exit 1; }
warn() { echo "deploy: warning: $*" >&2; }

STACK=${1:-}
[ -n "$STACK" ] || { sed -n '2,8p' "$0" >&2; die "name the stack: scripts/deploy.sh dev (or make deploy STACK=dev)"; }
shift
case "$STACK" in
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
esac
case "$STACK" in
  *[!A-Za-z0-9_-]*) die "stack name $STACK: use letters, digits, - and _ (the Pulumi.<STACK>.yaml files in deployment/pulumi)" ;;
esac
[ -f "deployment/pulumi/Pulumi.$STACK.yaml" ] ||
  die "no deployment/pulumi/Pulumi.$STACK.yaml: use dev, staging or production, or create that file first"

# Prerequisites.
command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build the Lambda functions)"
command -v pulumi >/dev/null 2>&1 ||
  die "the pulumi CLI is not on PATH: install it (https://www.pulumi.com/docs/install/) and run 'pulumi login'"
if command -v aws >/dev/null 2>&1; then
  ident=$(aws sts get-caller-identity --output text --query Arn 2>&1) ||
    die "no usable AWS credentials (aws sts get-caller-identity failed: $ident); set AWS_PROFILE or run 'aws configure' / 'aws sso login'"
  echo "deploy: AWS identity $ident"
else
  warn "the aws CLI is not installed: cannot check AWS credentials before pulumi runs (pulumi will fail if there are none)"
fi

# Pulumi login and stack, before the build: a missing login must not look
# like a new stack, nor cost a build first. --non-interactive: a logged-out
# CLI fails here instead of prompting for a token.
cd deployment/pulumi
who=$(pulumi whoami --non-interactive 2>&1) ||
  die "not logged in to a Pulumi backend (pulumi whoami: $who); run 'pulumi login' (Pulumi Cloud), 'pulumi login s3://<bucket>' or 'pulumi login --local' (the backend that holds your stacks), then retry"
echo "deploy: Pulumi user $who"
stacks=$(pulumi stack ls --json --non-interactive 2>&1) ||
  die "cannot list this project's stacks (pulumi stack ls: $stacks); check the backend ('pulumi whoami --verbose') and your network, then retry"
# The listing is JSON, one "name" per stack; stack names here are plain
# words (checked above), so the pattern matches the whole name only.
if printf '%s\n' "$stacks" | grep -Eq "\"name\": *\"$STACK\""; then
  out=$(pulumi stack select "$STACK" --non-interactive 2>&1) ||
    die "stack $STACK exists but cannot be selected (pulumi stack select: $out)"
else
  echo "deploy: stack $STACK does not exist in this backend yet: creating it (pulumi stack init $STACK)"
  # Interactive: a self-managed backend may ask for the secrets passphrase.
  pulumi stack init "$STACK" ||
    die "could not create stack $STACK (see pulumi's message above); if it exists under another organization, run 'pulumi stack select <org>/$STACK' and retry"
fi
cd ../..

# Build the functions the program packages from dist/<function>.zip.
scripts/build-lambdas.sh --arch arm64 --out dist

cd deployment/pulumi
pulumi up --stack "$STACK" "$@"

# The CLI's profile of the stack: its outputs, which `streamer --stack
# STACK` reads (endpoint, WebSocket URL, table, region, issuer). The
# directory is Go's os.UserConfigDir()/streamer/stacks, beside the CLI's keys.
case "$(uname -s)" in
  Darwin) profiles="$HOME/Library/Application Support/streamer/stacks" ;;
  *) profiles="${XDG_CONFIG_HOME:-$HOME/.config}/streamer/stacks" ;;
esac
mkdir -p "$profiles"
tmp=$(mktemp "$profiles/.$STACK.json.XXXXXX")
if pulumi stack output --json --stack "$STACK" >"$tmp" && grep -q '"managementEndpoint"' "$tmp"; then
  mv "$tmp" "$profiles/$STACK.json"
  echo "deploy: saved the stack's outputs to $profiles/$STACK.json: run streamer against it with --stack $STACK (e.g. streamer smoke --stack $STACK --key KEY.pem)"
else
  rm -f "$tmp"
  warn "no CLI profile saved (the stack has no outputs yet?); after a deployment: pulumi stack output --json --stack $STACK > \"$profiles/$STACK.json\""
fi
