// Package configs owns the configuration files shipped inside the binary.
// The daemon's config loader (cmd/imsproxy) is the only consumer; it falls
// back to Standalone when no file is given, so the binary runs out of the box.
package configs

import _ "embed"

// Standalone is standalone.yaml: a configuration that needs nothing but the
// loopback interface, and whose values are the daemon's defaults. Every key
// in it is documented, so it doubles as the configuration reference.
//
//go:embed standalone.yaml
var Standalone []byte
