// Package siptest has what the loopback tests of the SIP packages share:
// a bare SIP endpoint on a UDP socket whose every message the test writes
// by hand, and a clock whose timers fire only when the test advances it.
package siptest
