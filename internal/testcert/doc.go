// Package testcert makes a self-signed certificate for 127.0.0.1 and
// localhost, for tests of the TLS management port.
package testcert
