// Package ratelog lets one log line a second through for a kind of event
// a peer can cause at will (a garbage datagram, a refused connection, a
// forged request within a dialog): a flood makes one line a second that
// counts what it stands for, not one line per event. The statistics count
// every event; the log only says that it happens.
package ratelog
