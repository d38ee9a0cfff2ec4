package tm

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// Target is one destination of a proxied request: a branch.
type Target struct {
	// URI becomes the Request-URI of the branch; a zero URI keeps the
	// Request-URI of the received request.
	URI sip.Uri
	// Dst, when set, is an outbound proxy ("udp:host:port", "tcp:host:port" or
	// "host:port") the branch is sent to whatever its Route and Request-URI
	// say (OpenSIPS' $du / the second parameter of t_relay).
	Dst string
	// Q orders serial forking: targets with a higher q are tried first,
	// targets of equal q in parallel (RFC 3261 §16.6, t_load_contacts).
	// Zero means 1.0.
	Q float64
	// Minor marks a branch the transaction does not wait for when every
	// other branch failed (minor_branch_flag), e.g. an early-media server.
	Minor bool
	// Flags are per-branch flags, visible to the hooks.
	Flags uint32
}

func (t Target) q() float64 {
	if t.Q <= 0 {
		return 1
	}
	return t.Q
}

// DecisionKind says what the router wants done with a request.
type DecisionKind uint8

const (
	// Relay forwards the request statefully to the decision's targets.
	Relay DecisionKind = iota
	// Respond answers the request locally (t_reply).
	Respond
	// Drop discards the request without an answer.
	Drop
)

// Decision is the router's answer for one request.
type Decision struct {
	Kind DecisionKind

	// Relay: the branches. Empty means one branch to the Request-URI, or to
	// the top Route when the request carries a route set.
	Targets []Target
	// RecordRoute inserts our Record-Route (dialog-forming requests only).
	RecordRoute bool
	// RecordRouteParams are added to our Record-Route URI (e.g. the dialog
	// module's did cookie).
	RecordRouteParams []sip.HeaderKV
	// FrTimeout and FrInvTimeout override the configured timers for this
	// transaction ($T_fr_timeout / $T_fr_inv_timeout); zero keeps them.
	FrTimeout, FrInvTimeout time.Duration
	// WaitForNewBranches keeps the transaction open when all its branches
	// failed, until InjectBranches or NoMoreBranches is called
	// (t_wait_for_new_branches).
	WaitForNewBranches bool

	// Respond: a ready response, or Code/Reason/Headers to build one.
	Response *sip.Response
	Code     int
	Reason   string
	Headers  []sip.Header
}

// RelayTo is a Relay decision to the given targets.
func RelayTo(targets ...Target) Decision { return Decision{Kind: Relay, Targets: targets} }

// Reply is a Respond decision with the given code and reason.
func Reply(code int, reason string, hdrs ...sip.Header) Decision {
	return Decision{Kind: Respond, Code: code, Reason: reason, Headers: hdrs}
}

// Request is a received request after validation and Route pre-processing,
// as the router sees it.
type Request struct {
	*sip.Request
	// Source is the "ip:port" the request came from, Transport its
	// transport ("UDP", "TCP").
	Source, Transport string
	// Initial is true for a request outside any dialog (no To tag).
	Initial bool
	// RouteConsumed is true when a Route of ours was removed (§16.4): the
	// request follows a route set we are in, typically a record-routed dialog.
	RouteConsumed bool
	// RouteParams are the URI parameters of the Route of ours that was
	// removed (e.g. a did cookie), nil when none was.
	RouteParams sip.HeaderParams
	// Tx is the transaction the request created; nil for ACK, which is
	// always relayed statelessly.
	Tx *Transaction
}

// Router is the request route of the proxy: it decides, for each request
// that passed validation, whether to relay it and where, or how to answer it.
// It runs on the goroutine that received the request and must not block for
// long.
type Router interface {
	Route(r *Request) Decision
}

// RouterFunc adapts a function to Router.
type RouterFunc func(r *Request) Decision

// Route implements Router.
func (f RouterFunc) Route(r *Request) Decision { return f(r) }

// Branch is one outgoing copy of a proxied request, as the branch hook sees
// it before it is sent.
type Branch struct {
	Index   int
	Target  Target
	Request *sip.Request
}

// BranchHook (t_on_branch) may change a branch's request in place or drop
// the branch by returning false.
type BranchHook interface {
	OnBranch(t *Transaction, b *Branch) bool
}

// ReplyHook (t_on_reply) sees every reply received on a branch before it is
// relayed. Returning false keeps a provisional reply from being relayed;
// final replies cannot be dropped (the response context needs them), and a
// 2xx is always relayed (RFC 3261 §16.7 step 5).
type ReplyHook interface {
	OnReply(t *Transaction, branch int, res *sip.Response) bool
}

// FailureHook (t_on_failure) runs when every branch failed: it may return
// new targets, tried as a new serial step; none lets the best response go
// upstream.
type FailureHook interface {
	OnFailure(t *Transaction, best *sip.Response) []Target
}

// FinalHook sees the final outcome of a transaction once: the first 2xx, the
// selected or locally generated final response, or 487 when the caller
// cancelled. local is true for responses tm generated.
type FinalHook interface {
	OnFinal(t *Transaction, res *sip.Response, local bool)
}
