// Package sipstr gives values cut from SIP messages memory of their own.
// tm's parser hands out slices of a message's whole header block (one
// allocation per message instead of one per header); a value kept long
// after the message (a dialog's tags and route set, a registration's
// contact) would keep that block alive with it.
package sipstr
