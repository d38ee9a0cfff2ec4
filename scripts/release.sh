#!/usr/bin/env bash
# Builds a release of imsdlg into dist/VERSION/:
#   imsproxy_VERSION_linux_ARCH, dlgctl_VERSION_linux_ARCH   static binaries
#   imsdlg_VERSION_ARCH.deb                                  Debian package
#   SHA256SUMS                                               checksums of all
# for ARCH in amd64 and arm64 (RELEASE_ARCHES="amd64" to build fewer;
# RELEASE_OUT=DIR to write elsewhere).
# The .deb installs /usr/bin/imsproxy and /usr/bin/dlgctl, the commented
# default configuration as /etc/imsdlg/imsproxy.yaml (a conffile), a
# hardened systemd unit (imsproxy.service, enabled and started when systemd
# runs) and the system user imsdlg. The container image is the Dockerfile
# at the root: docker build --build-arg VERSION=VERSION -t imsdlg/imsproxy:VERSION .
#
#   scripts/release.sh v0.2.0
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
	printf 'scripts/release.sh: %s\n' "$*" >&2
	exit 1
}
[ $# -eq 1 ] || die "usage: scripts/release.sh VERSION (e.g. v0.2.0)"
version=$1
[[ $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]] ||
	die "VERSION $version is not a semantic version like v0.2.0 or v0.2.0-rc.1"
debversion=${version#v}
debversion=${debversion/-/\~} # 0.2.0-rc.1 sorts before 0.2.0 as 0.2.0~rc.1
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian package dpkg)"
arches=${RELEASE_ARCHES:-amd64 arm64}
out=${RELEASE_OUT:-dist/$version}
rm -rf "$out"
mkdir -p "$out"
ldflags="-s -w -X github.com/imsdlg/imsdlg/internal/buildinfo.version=$version"

for arch in $arches; do
	for cmd in imsproxy dlgctl; do
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -ldflags "$ldflags" \
			-o "$out/${cmd}_${version}_linux_$arch" "./cmd/$cmd"
	done

	root=$(mktemp -d)
	trap 'rm -rf "$root"' EXIT
	install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/imsdlg" "$root/lib/systemd/system" \
		"$root/usr/share/doc/imsdlg"
	install -m 0755 "$out/imsproxy_${version}_linux_$arch" "$root/usr/bin/imsproxy"
	install -m 0755 "$out/dlgctl_${version}_linux_$arch" "$root/usr/bin/dlgctl"
	install -m 0640 configs/standalone.yaml "$root/etc/imsdlg/imsproxy.yaml"
	install -m 0644 packaging/imsproxy.service "$root/lib/systemd/system/imsproxy.service"
	install -m 0644 LICENSE "$root/usr/share/doc/imsdlg/copyright"
	install -m 0644 CHANGELOG.md README.md "$root/usr/share/doc/imsdlg/"
	install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
	echo /etc/imsdlg/imsproxy.yaml >"$root/DEBIAN/conffiles"
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	cat >"$root/DEBIAN/control" <<CONTROL
Package: imsdlg
Version: $debversion
Architecture: $arch
Maintainer: imsdlg maintainers <maintainers@imsdlg.invalid>
Installed-Size: $size
Depends: adduser | passwd
Section: net
Priority: optional
Homepage: https://github.com/imsdlg/imsdlg
Description: IMS dialog-stateful SIP proxy (P-CSCF / S-CSCF)
 imsproxy is a transaction- and dialog-stateful SIP proxy with forking,
 dialog profiles and call limits shared through Redis, dialog persistence,
 keepalives and a JSON-RPC management API (dlgctl).
CONTROL
	dpkg-deb --build --root-owner-group "$root" "$out/imsdlg_${version}_$arch.deb" >/dev/null
	rm -rf "$root"
	trap - EXIT
done

(cd "$out" && sha256sum -- * >SHA256SUMS)
echo "release $version in $out:"
ls -l "$out"
