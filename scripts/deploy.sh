#!/usr/bin/env bash
# Usage: scripts/deploy.sh STACK [pulumi up flags...]
# Deploys the streamer AWS stack STACK (dev, staging, production — the
# Pulumi.<STACK>.yaml files in deployment/pulumi): checks prerequisites,
# builds the Lambda zips (arm64) into dist/, then runs `pulumi up --stack STACK`.
# Extra arguments go to pulumi up (e.g. --yes, --diff). See deployment/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "deploy: $*" >&2; exit 1; }
warn() { echo "deploy: warning: $*" >&2; }

STACK=${1:-}
[ -n "$STACK" ] || { sed -n '2,6p' "$0" >&2; die "name the stack: scripts/deploy.sh dev (or make deploy STACK=dev)"; }
shift
case "$STACK" in
  -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
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

# Build the functions the program packages from dist/<function>.zip.
scripts/build-lambdas.sh --arch arm64 --out dist

cd deployment/pulumi
# `pulumi stack select` fails for a stack this backend has not seen yet.
pulumi stack select "$STACK" >/dev/null 2>&1 || {
  echo "deploy: creating stack $STACK in the current Pulumi backend"
  pulumi stack init "$STACK"
}
exec pulumi up --stack "$STACK" "$@"
