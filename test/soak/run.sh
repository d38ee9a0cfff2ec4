#!/usr/bin/env bash
# Runs the soak (issue 15 §15); arguments go to the test (-soak.duration,
# -soak.rate, -soak.hold, -soak.lost, -soak.junk, -soak.idle, -soak.drain).
# The summary is printed and written to test/soak/last-run.txt (with the
# tail of the proxy's log). Installs sipp and redis-server like
# scripts/test.sh when they are missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
scripts/test.sh -run '^$' ./internal/redistest >/dev/null # installs the tools
export SOAK_SUMMARY="$PWD/test/soak/last-run.txt"
exec go test -tags soak -count=1 -run '^TestSoak$' -timeout 3h -v ./test/soak -args "$@"
