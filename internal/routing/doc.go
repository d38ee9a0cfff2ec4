// Package routing is the request route of the imsproxy daemon: it answers
// REGISTER for our domains through the location service, forks requests
// for our users to all their contacts, follows route sets for in-dialog
// requests, and sends the rest towards the Request-URI's domain or a
// configured next hop. It is the "script" of a Kamailio/OpenSIPS config
// expressed as a tm.Router.
package routing
