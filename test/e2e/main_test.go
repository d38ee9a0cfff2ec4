package e2e

import (
	"os"
	"testing"
)

// TestMain removes what BuildProxy built once the tests ran. It is the only
// TestMain of the package: do not add another one.
func TestMain(m *testing.M) { os.Exit(Main(m)) }
