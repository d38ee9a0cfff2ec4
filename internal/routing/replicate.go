package routing

import (
	"log/slog"
	"regexp"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm"
)

// Replication is one entry of the daemon's replicate list (OpenSIPS tm
// t_replicate): a request matching Method, RURI and From is copied to To
// (a REGISTER to a second registrar, a MESSAGE to a recorder) before it
// is routed. Nothing the copy's destination answers reaches the caller.
type Replication struct {
	Method sip.RequestMethod
	// RURI and From, when set, must match the Request-URI and the From
	// URI, as for ASRule.
	RURI, From *regexp.Regexp
	// To is the copy's next hop, a sip: URI.
	To string
}

// Matches reports whether the rule applies to req.
func (r *Replication) Matches(req *sip.Request) bool {
	return requestMatches(req, r.Method, r.RURI, r.From)
}

// requestMatches is the filter of AS and replication rules: the method,
// then the Request-URI and From URI patterns when set.
func requestMatches(req *sip.Request, method sip.RequestMethod, ruri, from *regexp.Regexp) bool {
	if req.Method != method {
		return false
	}
	if ruri != nil && !ruri.MatchString(req.Recipient.String()) {
		return false
	}
	if from != nil {
		f := req.From()
		if f == nil || !from.MatchString(f.Address.String()) {
			return false
		}
	}
	return true
}

// ReplicateModule is the module whose middleware copies each request a
// rule matches to the rule's To (tm.Transaction.Replicate), then lets the
// routers after it decide as they would. A copy that cannot be sent is
// logged; the request goes on.
func ReplicateModule(rules []Replication, log *slog.Logger) tm.Module {
	if log == nil {
		log = slog.Default()
	}
	return tm.Module{Name: "replicate", Middleware: func(next tm.Router) tm.Router {
		return tm.RouterFunc(func(r *tm.Request) tm.Decision {
			if r.Tx != nil {
				for i := range rules {
					if !rules[i].Matches(r.Request) {
						continue
					}
					if err := r.Tx.Replicate(rules[i].To); err != nil {
						log.Warn("request not replicated", "callid", r.CallID().Value(), "method", string(r.Method),
							"to", rules[i].To, "error", err)
					}
				}
			}
			return next.Route(r)
		})
	}}
}
