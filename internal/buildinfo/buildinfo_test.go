package buildinfo

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestInfoString(t *testing.T) {
	for _, tc := range []struct {
		in   Info
		want string
	}{
		{Info{Version: "v1.2.0", Go: "go1.26.8"}, "v1.2.0 go1.26.8"},
		{Info{Version: "devel", Revision: "0123456789abcdef0123", Time: "2026-12-01T10:00:00Z", Go: "go1.26.8"},
			"devel (0123456789ab 2026-12-01T10:00:00Z) go1.26.8"},
		{Info{Version: "devel", Revision: "0123456789abcdef", Modified: true, Go: "go1.26.8"}, "devel (0123456789ab+dirty) go1.26.8"},
		// A pseudo-version already names the commit.
		{Info{Version: "v0.0.0-20261201100000-0123456789ab", Revision: "0123456789abcdef", Go: "go1.26.8"},
			"v0.0.0-20261201100000-0123456789ab go1.26.8"},
	} {
		assert.Equal(t, tc.want, tc.in.String())
	}
}

// The test binary is built by the go command: Get reads its build info.
func TestGetNeverEmpty(t *testing.T) {
	in := Get()
	assert.NotEmpty(t, in.Version)
	assert.True(t, strings.HasPrefix(in.Go, "go"))
}
