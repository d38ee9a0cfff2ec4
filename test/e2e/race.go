//go:build race

package e2e

// raceEnabled: the tests run with -race, so BuildProxy builds the daemon
// with -race too.
const raceEnabled = true
