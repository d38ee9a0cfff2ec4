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
	// Defer leaves the decision for later: the router (or a middleware)
	// calls Transaction.Decide once it has one, e.g. when a call limit
	// counted in Redis answered. The transaction waits meanwhile; a CANCEL
	// still ends it. Without a transaction (ACK) Defer drops the request.
	Defer
)

// Decision is the router's answer for one request.
type Decision struct {
	Kind DecisionKind

	// Relay: the branches. Empty means one branch to the Request-URI, or to
	// the top Route when the request carries a route set.
	Targets []Target
	// Dst is that one branch's outbound proxy when Targets is empty (as
	// RelayTo(Target{Dst: dst}), without a list to allocate: a request
	// within a dialog sent to its leg's address); ignored with Targets.
	Dst string
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
	// MaxNewBranches, with WaitForNewBranches, ends the wait once that
	// many branches were injected (t_wait_for_new_branches' branches);
	// zero: no maximum.
	MaxNewBranches int
	// AllowNoCancel follows a request's Request-Disposition: no-cancel
	// (RFC 3841 §9.1; t_relay's flag allow-no-cancel): its first 2xx does
	// not cancel the branches still pending, which go on until they
	// answer (each further 2xx is relayed too) or time out. Without it, or
	// without the directive, a 2xx cancels them (§16.7 step 10).
	AllowNoCancel bool

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
	// Sender sends on the proxy's behalf and tells our own addresses.
	Sender Sender
}

// Router is the request route of the proxy: it decides, for each request
// that passed validation, whether to relay it and where, or how to answer it.
// An ACK (r.Tx nil) is valid during Route only: tm reuses its memory once
// it is relayed (copy what you keep); a request with a transaction is
// valid as long as the transaction is not done, and for a router that
// returned Defer until it calls Decide (not after: tm reuses its memory).
// That holds for r itself too: it lives in the request's memory.
// It runs on the goroutine that received the request and must not block:
// work that waits on the network (a limit counted in Redis) returns a
// Defer decision and calls Transaction.Decide when it is done.
type Router interface {
	Route(r *Request) Decision
}

// RouterFunc adapts a function to Router.
type RouterFunc func(r *Request) Decision

// Route implements Router.
func (f RouterFunc) Route(r *Request) Decision { return f(r) }

// Middleware wraps the router that comes after it (CoreDNS and net/http
// style): it may act before and after next decides, change the decision,
// or decide alone.
type Middleware func(next Router) Router

// Branch is one outgoing copy of a proxied request, as the branch hook sees
// it before it is sent.
type Branch struct {
	Index   int
	Target  Target
	Request *sip.Request
}

// BranchHook (t_on_branch) may change a branch's request or drop the
// branch by returning false. The request's header values are shared with
// the transaction's request and its other branches (issue 14: a branch
// costs no copy of the headers it does not change): add, remove or
// replace headers and set the Request-URI, but never edit a header value
// in place (clone it, change the clone, ReplaceHeader). Like the
// transaction's request, it is valid as long as the transaction is not
// done: tm reuses its memory then (but an INVITE's or a CANCEL's).
type BranchHook interface {
	OnBranch(t *Transaction, b *Branch) bool
}

// ReplyHook (t_on_reply) sees every reply received on a branch before it is
// relayed. Returning false keeps a provisional reply from being relayed.
// Final replies other than 2xx cannot be dropped (the response context
// needs them). A 2xx is relayed (RFC 3261 §16.7 step 5) unless the
// transaction already has its final reply upstream (a second 2xx, or one
// crossing a t_reply): then false absorbs it, and its retransmissions, so
// that the module that asked can end that session itself (ACK and BYE).
// Never both: a 2xx the caller got is the caller's to end.
//
// The response, its headers and their parameter lists are valid during
// the call only: tm reuses the memory of received responses (issue 14).
// Copy what you keep (Clone, or the strings, which stay valid; with
// Config.ReuseMessageText the strings go too: copy them, strings.Clone).
type ReplyHook interface {
	OnReply(t *Transaction, branch int, res *sip.Response) bool
}

// FailureHook (t_on_failure) runs when every branch failed: it may return
// new targets, tried as a new serial step; none lets the best response go
// upstream. best is valid during the call only (ReplyHook).
type FailureHook interface {
	OnFailure(t *Transaction, best *sip.Response) []Target
}

// OutcomeKind says how a transaction ended upstream.
type OutcomeKind uint8

const (
	// Answered: a branch's 2xx went upstream (Branch, Code, Response).
	Answered OutcomeKind = iota + 1
	// Failed: the best non-2xx of the branches went upstream (Branch), or
	// tm made one (Local: timeout, no branch left, transport error).
	Failed
	// Cancelled: the caller cancelled the request and no 2xx crossed the
	// CANCEL (Code is 487).
	Cancelled
	// Replied: the router or t_reply answered the request locally (Code).
	Replied
)

var outcomeNames = [...]string{"", "answered", "failed", "cancelled", "replied"}

func (k OutcomeKind) String() string {
	if int(k) < len(outcomeNames) && k > 0 {
		return outcomeNames[k]
	}
	return "unknown"
}

// Outcome is how a transaction ended upstream, told once to the observers.
type Outcome struct {
	Kind   OutcomeKind
	Code   int
	Reason string
	// Branch is the branch whose reply went upstream; -1 when tm made the
	// reply (Local) or the request was answered locally.
	Branch int
	// Local is true when the reply upstream was made by the proxy, not
	// relayed from a branch.
	Local bool
	// Response is the final reply as received on Branch, or as tm built
	// it; read-only, and valid during OnOutcome only (ReplyHook).
	Response *sip.Response
	// AfterCancel: the caller had cancelled the request (§16.10) before
	// this final went up. With Answered it is RFC 5407's race of a 200 OK
	// crossing the CANCEL: the caller has the session it gave up on.
	AfterCancel bool
}

// Observer watches transactions without deciding anything. tm calls it
// outside its locks; it must not block. A response it is handed is valid
// during the call only, as a ReplyHook's.
type Observer interface {
	// OnReply is told of every reply a branch receives, before tm acts on
	// it, with the hooks' verdict still to come.
	OnReply(t *Transaction, branch int, res *sip.Response)
	// OnOutcome is told once how the transaction ended upstream.
	OnOutcome(t *Transaction, o Outcome)
	// OnDone is told once, after OnOutcome, when every branch has finished:
	// nothing more happens on the transaction.
	OnDone(t *Transaction)
}

// RetransmissionObserver is an Observer that also hears of each further
// 2xx a branch relays after its first (OnReply saw that one): a
// retransmission means the callee has no ACK yet (RFC 3261 §13.3.1.4).
// It is told before the 2xx is relayed; it must not block nor keep res.
type RetransmissionObserver interface {
	On2xxRetransmission(t *Transaction, branch int, res *sip.Response)
}

// StrayObserver is an Observer that also hears of each response that
// matched no client transaction yet carries our Via, before tm relays it
// statelessly (§16.11): mostly a 2xx the callee repeats after the INVITE's
// transactions ended (they stay wt_timer, not the RFC's 64*T1) because no
// ACK reached it (RFC 3261 §13.3.1.4). It must not block nor keep res.
type StrayObserver interface {
	OnStrayResponse(res *sip.Response)
}

// LocalObserver is an Observer that also sees each request and reply tm
// makes itself, as it leaves (OpenSIPS tm's local_request_route and
// local_reply_route): requests are a branch's CANCEL, the ACK of a non-2xx
// final, and what Sender.Send and the local INVITEs of Proxy.SendRequest
// send (with their ACK and BYE); replies are the 100 (Trying), every final
// reply tm makes (a rejection, a CANCEL's 200, a timeout's 408, a
// Transaction.Reply) and the 400 to a message that does not parse. A
// retransmission is not seen again, nor is anything relayed. Read only: it
// may run under tm's locks, so it must not change or keep the message, call
// into tm, or block.
type LocalObserver interface {
	OnLocalRequest(req *sip.Request)
	OnLocalReply(res *sip.Response)
}

// ObserverFuncs adapts functions to Observer; nil fields are skipped.
type ObserverFuncs struct {
	Reply   func(t *Transaction, branch int, res *sip.Response)
	Outcome func(t *Transaction, o Outcome)
	Done    func(t *Transaction)
}

// OnReply implements Observer.
func (f ObserverFuncs) OnReply(t *Transaction, branch int, res *sip.Response) {
	if f.Reply != nil {
		f.Reply(t, branch, res)
	}
}

// OnOutcome implements Observer.
func (f ObserverFuncs) OnOutcome(t *Transaction, o Outcome) {
	if f.Outcome != nil {
		f.Outcome(t, o)
	}
}

// OnDone implements Observer.
func (f ObserverFuncs) OnDone(t *Transaction) {
	if f.Done != nil {
		f.Done(t)
	}
}

// Module is one component plugged into the proxy when it is built: the
// explicit chain that replaces discovering hooks by type assertion. Every
// field is optional. Modules run in the order given: the first module's
// middleware is the outermost, its hooks and observer run first.
type Module struct {
	// Name appears in the logs of a hook that panicked.
	Name       string
	Middleware Middleware
	Branch     BranchHook
	Reply      ReplyHook
	// Failure hooks are asked in module order; the first that returns
	// targets decides.
	Failure  FailureHook
	Observer Observer
}
