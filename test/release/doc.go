// Package release tests scripts/release.sh: the binaries are static and
// stamped, the checksums hold, the .deb has its files, conffile, unit and
// maintainer scripts, and (in CI, as root, or with TEST_INSTALL_DEB=1)
// it installs, its service's command starts and answers /healthz as the
// imsdlg user, and it purges cleanly.
package release
