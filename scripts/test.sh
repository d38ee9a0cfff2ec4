#!/usr/bin/env bash
# Runs every test of imsdlg: the one command for a fresh Debian machine.
#
#   scripts/test.sh                     go vet + go test -race -count=1 ./...
#   scripts/test.sh -run Foo ./tm/      extra go test flags and packages
#
# First it installs what the tests need when it is missing, from Debian's
# packages: sipp (package sip-tester), redis-server, and gcc for the race
# detector (cgo). It runs apt-get update once, as root or through sudo,
# non-interactively. Go itself must be installed (https://go.dev/dl).
#
# Arguments: those naming packages (., ./dir, ./dir/..., ../x, or module
# paths github.com/...) select the packages to vet and test (default ./...);
# every other argument is passed to go test. Exits non-zero when an install,
# go vet or a test fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'scripts/test.sh: %s\n' "$*" >&2
	exit 1
}

# ---- system packages -------------------------------------------------------

missing=() # Debian packages to install
command -v sipp >/dev/null 2>&1 || missing+=(sip-tester)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# go test -race needs cgo, so a C compiler.
command -v "${CC:-gcc}" >/dev/null 2>&1 || missing+=(gcc libc6-dev)

if ((${#missing[@]} > 0)); then
	say "installing ${missing[*]} (needed by the tests)"
	command -v apt-get >/dev/null 2>&1 ||
		die "apt-get not found: install ${missing[*]} (Debian package names) by hand, then run this again"
	if [ "$(id -u)" -eq 0 ]; then
		asroot=(env DEBIAN_FRONTEND=noninteractive)
	elif command -v sudo >/dev/null 2>&1; then
		asroot=(sudo env DEBIAN_FRONTEND=noninteractive)
	else
		die "not root and sudo not found: as root run 'apt-get update && apt-get install ${missing[*]}', then run this again"
	fi
	"${asroot[@]}" apt-get update -q ||
		die "apt-get update failed (see above): cannot install ${missing[*]}"
	"${asroot[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed (see above)"
	for tool in sipp redis-server "${CC:-gcc}"; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool still not found after installing ${missing[*]}"
	done
fi

# ---- Go --------------------------------------------------------------------

if ! command -v go >/dev/null 2>&1; then
	if [ -x /usr/local/go/bin/go ]; then
		PATH=$PATH:/usr/local/go/bin
	else
		die "Go not found on PATH nor in /usr/local/go: install Go $(sed -n 's/^go //p' go.mod) or newer (https://go.dev/dl), then run this again"
	fi
fi
say "$(go version); sipp $(sipp -v 2>/dev/null | sed -n 's/.*SIPp \(v[^ ]*\).*/\1/p' | head -n 1); $(redis-server --version | cut -d' ' -f1-3)"

# ---- vet and test ----------------------------------------------------------

pkgs=()
flags=()
for arg in "$@"; do
	case $arg in
	. | ./* | ../* | github.com/*)
		if [ -d "$arg" ] || [[ $arg == */... || $arg == github.com/* ]]; then
			pkgs+=("$arg")
		else
			flags+=("$arg")
		fi
		;;
	*) flags+=("$arg") ;;
	esac
done
((${#pkgs[@]} > 0)) || pkgs=(./...)

status=0
say "go vet ${pkgs[*]}"
if ! go vet "${pkgs[@]}"; then
	status=1
	printf 'scripts/test.sh: go vet failed (see above); running the tests anyway\n' >&2
fi

say "go test -race -count=1 ${flags[*]:+${flags[*]} }${pkgs[*]}"
go test -race -count=1 "${flags[@]}" "${pkgs[@]}" || status=1

exit "$status"
