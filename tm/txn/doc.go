// Package txn holds tm's own SIP transactions: the four state machines of
// RFC 3261 §17 (INVITE and non-INVITE, client and server) with the
// Accepted states of RFC 6026, and the transaction keys of §17.1.3 and
// §17.2.3.
//
// It exists so that tm no longer rides sipgo's transaction layer, which
// spends a context, runtime timers and goroutines on every transaction,
// answers 487 on its own when a CANCEL arrives, and keeps every completed
// transaction's messages (issue 14). Here a transaction is a small value
// (Tx) whose Step applies one event and appends the actions its owner must
// perform: no I/O, no goroutine, no clock, no allocation. One timer wheel
// (package tm/wheel) can drive the timers of every transaction.
//
// # What the owner keeps and does
//
// A Tx never holds message bytes. The owner keeps the request (client: to
// send and retransmit it), the last response it sent (server: to resend
// it), and the ACK of a non-2xx final (client INVITE: built once from the
// request and the response, §17.1.1.3, then resent on each retransmitted
// final). A completed server transaction thus costs its key, a Tx and the
// bytes of its last reply: all that absorbing retransmissions needs.
//
// The owner executes the actions in the order Step returns them. Within
// one Step the order is always: timers stopped, messages put on the wire,
// timers armed, what the transaction user is told (ActPass*, ActTimeout,
// ActTransportError), and ActTerminated last. So a TU that reacts to a
// pass-up by stepping the same transaction again finds its timers already
// in place, and the owner removes the transaction from its table only after
// the TU heard everything. After ActTerminated, Step returns nothing.
//
// A transaction has at most two timers pending: one retransmission timer
// (A, E or G) and one lifetime timer (B, D, F, H, I, J, K, L or M); see
// TimerID.Retransmission. ActArmTimer only ever targets a slot that is free
// (its timer fired, or was stopped earlier in the same action list), so the
// owner can keep two wheel entries per transaction. Each arm carries a
// generation; the owner hands it back in EvTimer and a firing of an older
// arming is ignored, so a Stop that loses its race with the wheel is
// harmless. The generation must travel with the arming (a closure, or the
// arg of wheel.ScheduleArg), not be read from the owner's record when the
// timer fires: by then a lost Stop may have been followed by a new arming.
// Waits that are zero (Timers D, I, J and K on reliable
// transports) are not armed: the transaction terminates in the same Step.
//
// Things the state machines deliberately leave to the TU:
//   - the 100 (Trying) of §17.2.1: the TU knows whether it will answer
//     within 200 ms; it sends it as any provisional (EvSendResponse, 100);
//   - the 487 to an INVITE on CANCEL (§9.2, §16.10): a CANCEL is its own
//     server transaction; the TU finds the INVITE's (AppendCancelTargetKey)
//     and decides whether to answer it;
//   - Timer C of a proxy (§16.6 step 11, fr_inv_timeout): the response
//     context owns it. Timer B runs only in Calling (§17.1.1.2); once the
//     owner sends a CANCEL for a client INVITE it steps EvCancelSent, which
//     re-arms Timer B so that a branch that never answers the CANCEL is
//     still destroyed (§9.1: 64*T1 without a final response);
//   - 2xx that the server transaction no longer takes (a 2xx from a branch
//     after a non-2xx final went upstream): Step returns no ActSendResponse,
//     and the proxy forwards the response statelessly (§16.7 step 9).
//
// Transport errors follow §17.1.4 on the client side (inform the TU,
// terminate; ignored in the states where the transaction sends nothing:
// client INVITE Accepted, client non-INVITE Completed) and RFC 6026 §8.8 on
// the server side (inform the TU, stay in the current state, so that
// retransmitted requests are still absorbed rather than taken for new ones
// and forwarded again). A client transaction may thus report a transport
// error after its final response went up (the ACK of a non-2xx could not
// be sent): the TU ignores failures of branches it has already completed.
//
// # Keys
//
// AppendServerKey, AppendCancelTargetKey and AppendClientKey write keys
// into a caller's buffer; the owner looks them up with m[string(key)],
// which Go does without allocating. RFC 2543 requests (no magic cookie)
// fall back to the header comparison of the last paragraphs of §17.2.3; for
// them the INVITE key leaves out the To tag so that the ACK of any final
// response finds the INVITE, and the owner checks the ACK's To tag against
// the To tag of the response the transaction sent.
package txn
