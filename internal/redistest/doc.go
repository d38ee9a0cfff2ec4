// Package redistest starts real redis-server processes on loopback ports
// for tests: single servers (optionally persistent, so a test can stop
// Redis mid-call and start it again with its data) and the clean-up that
// goes with them. It skips a test when redis-server is not installed,
// except under CI (CI=true), where the absence is a broken set-up.
package redistest
