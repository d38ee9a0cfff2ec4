package tm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// dialTimeout bounds connection set-up for one outgoing message, so a dead
// TCP peer cannot hold a branch longer than a transaction would wait.
const dialTimeout = 5 * time.Second

// udpReadBuffer is the socket buffer asked for on UDP listeners.
const udpReadBuffer = 4 << 20

// Options configure a Proxy.
type Options struct {
	Config Config
	// Router decides what happens to each request: the innermost link of
	// the chain, after every module's middleware. Required.
	Router Router
	// Modules plug middleware, hooks and observers in, in this order (see
	// Module). Nothing is discovered by type assertion: what is not
	// declared here is not called.
	Modules []Module
	// Supported lists the option tags accepted in Proxy-Require (§16.3 step 5).
	Supported []string
	Logger    *slog.Logger
	Clock     Clock
	// UserAgent names the proxy in the UAs sipgo builds (default "imsdlg").
	UserAgent string
}

// hook is one hook with the name of the module it came from, for the log
// of a panic.
type hook[T any] struct {
	module string
	h      T
}

// Proxy is a transaction-stateful forking SIP proxy on sipgo.
type Proxy struct {
	cfg       Config
	router    Router // the whole chain: every module's middleware around Options.Router
	branch    []hook[BranchHook]
	reply     []hook[ReplyHook]
	failure   []hook[FailureHook]
	observers []hook[Observer]
	supported []string
	log       *slog.Logger
	clock     Clock

	ua     *sipgo.UserAgent
	tp     *sip.TransportLayer
	txl    *sip.TransactionLayer
	parser *sip.Parser

	listeners atomic.Pointer[[]*listener]
	lmu       sync.Mutex // serialises Listen
	invites   *inviteTable
	stats     Stats
	nextID    atomic.Uint64
	closed    atomic.Bool
	draining  atomic.Bool
	wg        sync.WaitGroup
	// stop ends the local requests in flight when the proxy closes.
	stop    context.Context
	stopped context.CancelFunc
}

type listener struct {
	network   string // "udp", "tcp"
	transport string // "UDP", "TCP"
	host      string // advertised in Via and Record-Route
	port      int
	ip        net.IP
	laddr     sip.Addr // UDP: makes sipgo send from this socket
	pc        net.PacketConn
	ln        net.Listener
}

// Listener describes one socket the proxy serves.
type Listener struct {
	Network, Addr, Advertise string
}

// New builds a proxy. It does not listen yet: call Listen.
func New(o Options) (*Proxy, error) {
	if o.Router == nil {
		return nil, errors.New("tm: Options.Router is required")
	}
	if err := o.Config.Validate(); err != nil {
		return nil, fmt.Errorf("tm config: %w", err)
	}
	p := &Proxy{
		cfg:       o.Config,
		router:    o.Router,
		supported: o.Supported,
		log:       o.Logger,
		clock:     o.Clock,
		invites:   newInviteTable(),
	}
	p.stop, p.stopped = context.WithCancel(context.Background())
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.clock == nil {
		p.clock = realClock{}
	}
	for i := len(o.Modules) - 1; i >= 0; i-- {
		if mw := o.Modules[i].Middleware; mw != nil {
			if p.router = mw(p.router); p.router == nil {
				return nil, fmt.Errorf("tm: module %q: middleware returned a nil router", o.Modules[i].Name)
			}
		}
	}
	for i, m := range o.Modules {
		name := m.Name
		if name == "" {
			name = "module " + strconv.Itoa(i)
		}
		if m.Branch != nil {
			p.branch = append(p.branch, hook[BranchHook]{name, m.Branch})
		}
		if m.Reply != nil {
			p.reply = append(p.reply, hook[ReplyHook]{name, m.Reply})
		}
		if m.Failure != nil {
			p.failure = append(p.failure, hook[FailureHook]{name, m.Failure})
		}
		if m.Observer != nil {
			p.observers = append(p.observers, hook[Observer]{name, m.Observer})
		}
	}
	name := o.UserAgent
	if name == "" {
		name = "imsdlg"
	}
	p.parser = sip.NewParser()
	p.parser.MaxMessageLength = p.cfg.MaxMessageSize
	sipLog := p.log.With("component", "sipgo")
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(name),
		sipgo.WithUserAgentParser(p.parser),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sipLog),
			sip.WithTransportLayerReadFilter(p.readFilter),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(p.onStrayResponse),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("tm: sipgo user agent: %w", err)
	}
	p.ua = ua
	p.tp = ua.TransportLayer()
	p.txl = ua.TransactionLayer()
	p.txl.OnRequest(p.onRequest)
	empty := []*listener{}
	p.listeners.Store(&empty)
	return p, nil
}

// ApplyGlobalTimers sets sipgo's process-wide transaction timers from cfg.
// sipgo keeps them in package variables, so only the daemon's main calls
// this, once, before any proxy starts.
func ApplyGlobalTimers(cfg Config) {
	sip.SetTimers(cfg.T1, cfg.T2, cfg.T4)
	// wt_timer stands for the wait states of completed transactions
	// (Timer D for INVITE clients, Timer J for non-INVITE servers).
	sip.Timer_D = cfg.WtTimer
	sip.Timer_J = cfg.WtTimer
	// fr_timeout, not Timer B/F, decides when a branch gives up; keep
	// sipgo's own timers from firing first.
	if b := cfg.FrTimeout + cfg.T1; b > sip.Timer_B {
		sip.Timer_B = b
		sip.Timer_F = b
	}
	// Requests above UDPMaxSize are moved to TCP by tm itself; responses
	// must go back the way the request came, so sipgo must not refuse them.
	sip.UDPMTUSize = cfg.MaxMessageSize + 200
}

// Stats returns the live counters.
func (p *Proxy) Stats() *Stats { return &p.stats }

// Config returns the configuration the proxy runs with.
func (p *Proxy) Config() Config { return p.cfg }

// Listen opens a socket and serves it until Close. network is "udp" or
// "tcp"; addr a concrete host:port (port 0 picks a free one); advertise,
// when set, is the host (or host:port) written into Via and Record-Route.
func (p *Proxy) Listen(network, addr, advertise string) (net.Addr, error) {
	if p.closed.Load() {
		return nil, errors.New("tm: proxy closed")
	}
	network = strings.ToLower(network)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s:%s: %w", network, addr, err)
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return nil, fmt.Errorf("listen %s:%s: host must be an IP address", network, addr)
	}
	if ip.IsUnspecified() && advertise == "" {
		return nil, fmt.Errorf("listen %s:%s: a wildcard address needs an advertised address (advertise)", network, addr)
	}
	fam := "4"
	if ip.To4() == nil {
		fam = "6"
	}
	l := &listener{network: network, transport: strings.ToUpper(network), ip: ip}
	switch network {
	case "udp":
		pc, err := net.ListenPacket("udp"+fam, addr)
		if err != nil {
			return nil, fmt.Errorf("listen udp:%s: %w", addr, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			// One reader drains the socket; a burst must wait in the kernel
			// rather than be dropped (the kernel caps this at rmem_max).
			uc.SetReadBuffer(udpReadBuffer)
			uc.SetWriteBuffer(udpReadBuffer)
		}
		l.pc = pc
		ua := pc.LocalAddr().(*net.UDPAddr)
		l.port = ua.Port
		l.laddr = sip.Addr{IP: ua.IP, Port: ua.Port}
	case "tcp":
		ln, err := net.Listen("tcp"+fam, addr)
		if err != nil {
			return nil, fmt.Errorf("listen tcp:%s: %w", addr, err)
		}
		l.ln = ln
		l.port = ln.Addr().(*net.TCPAddr).Port
	default:
		return nil, fmt.Errorf("listen %s:%s: transport %q is not supported (udp, tcp)", network, addr, network)
	}
	l.host = ip.String()
	if advertise != "" {
		if h, ps, err := net.SplitHostPort(advertise); err == nil {
			n, perr := strconv.Atoi(ps)
			if perr != nil || n <= 0 || n > 65535 {
				l.close()
				return nil, fmt.Errorf("listen %s:%s: bad advertised port in %q", network, addr, advertise)
			}
			l.host, l.port = strings.Trim(h, "[]"), n
		} else {
			l.host = strings.Trim(advertise, "[]")
		}
	}
	p.lmu.Lock()
	old := *p.listeners.Load()
	next := append(append([]*listener{}, old...), l)
	p.listeners.Store(&next)
	p.lmu.Unlock()

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		var err error
		if l.pc != nil {
			err = p.tp.ServeUDP(l.pc)
		} else {
			err = p.tp.ServeTCP(l.ln)
		}
		if err != nil && !p.closed.Load() && !errors.Is(err, net.ErrClosed) {
			p.log.Error("listener stopped", "network", network, "addr", addr, "error", err)
		}
	}()
	if l.pc != nil {
		// sipgo registers the socket for sending only once its read loop
		// runs; wait for that so our first branch leaves from this socket.
		key := l.pc.LocalAddr().String()
		for i := 0; i < 1000; i++ {
			if c, err := p.tp.GetConnection("udp", key); err == nil && c != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	if l.pc != nil {
		return l.pc.LocalAddr(), nil
	}
	return l.ln.Addr(), nil
}

func (l *listener) close() {
	if l.pc != nil {
		l.pc.Close()
	}
	if l.ln != nil {
		l.ln.Close()
	}
}

// Close stops the listeners and every transaction.
func (p *Proxy) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.stopped()
	for _, l := range *p.listeners.Load() {
		l.close()
	}
	err := p.ua.Close()
	p.wg.Wait()
	return err
}

// Listeners reports the sockets served, as "udp:host:port".
func (p *Proxy) Listeners() []string {
	ls := *p.listeners.Load()
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.network+":"+net.JoinHostPort(l.host, strconv.Itoa(l.port)))
	}
	return out
}

func trimBrackets(h string) string {
	if len(h) > 1 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

func (p *Proxy) isOurHostPort(host string, port int, defPort int) bool {
	if port == 0 {
		port = defPort
	}
	host = trimBrackets(host)
	for _, l := range *p.listeners.Load() {
		if l.port != port {
			continue
		}
		if strings.EqualFold(host, l.host) {
			return true
		}
		if ip := net.ParseIP(host); ip != nil && ip.Equal(l.ip) {
			return true
		}
	}
	return false
}

// pickListener chooses the socket a message to h leaves from: same
// transport, same address family when the destination is an IP literal.
func (p *Proxy) pickListener(transport, host string) *listener {
	ls := *p.listeners.Load()
	ip := net.ParseIP(trimBrackets(host))
	var anyTransport *listener
	for _, l := range ls {
		if l.transport != transport {
			continue
		}
		if anyTransport == nil {
			anyTransport = l
		}
		if ip == nil || (ip.To4() == nil) == (l.ip.To4() == nil) {
			return l
		}
	}
	return anyTransport
}

func (p *Proxy) hasTransport(transport string) bool {
	for _, l := range *p.listeners.Load() {
		if l.transport == transport {
			return true
		}
	}
	return false
}

// newVia builds our Via for a message leaving through l.
func newVia(l *listener, transport, branch string) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: l.host, Port: l.port, Params: sip.NewParams()}
	v.Params.Add("branch", branch)
	v.Params.Add("rport", "")
	return v
}

// route addresses a request to hop h through listener l: transport,
// destination and, for UDP, the socket sipgo must send from.
func route(req *sip.Request, h hop, l *listener) {
	req.SetTransport(h.transport)
	req.SetDestination(h.addr())
	if h.transport == "UDP" && l != nil && l.pc != nil {
		req.Laddr = l.laddr
	} else {
		req.Laddr = sip.Addr{}
	}
}

// upstreamAddr is where responses to a received request go (RFC 3261
// §18.2.2 with RFC 3581): the source IP, and the source port when the
// client asked for rport, else the Via port.
func upstreamAddr(req *sip.Request) string {
	src := req.Source()
	via := req.Via()
	if via == nil {
		return src
	}
	host, sport, err := net.SplitHostPort(src)
	if err != nil {
		return src
	}
	if _, ok := via.Params.Get("rport"); ok || sip.IsReliable(req.Transport()) {
		return net.JoinHostPort(host, sport)
	}
	port := via.Port
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// onRequest is sipgo's entry for every request that opened a server
// transaction (and for ACK/CANCEL that matched none).
func (p *Proxy) onRequest(req *sip.Request, srv *sip.ServerTx) {
	var t *Transaction
	defer func() {
		// A bug in a router or hook must cost one request, not the
		// process with every call in it.
		if r := recover(); r != nil {
			p.log.Error("panic while handling a request", "callid", callID(req), "method", string(req.Method),
				"panic", r, "stack", string(debug.Stack()))
			switch {
			case t != nil:
				t.Reply(500, "Server Internal Error")
			case !req.IsAck() && srv.Err() == nil:
				p.replyOn(srv, req, 500, "Server Internal Error")
			}
		}
	}()
	switch req.Method {
	case sip.ACK:
		// An ACK for a 2xx is its own transaction in sipgo; it needs no
		// state here: forward it and forget (§16.11).
		srv.Terminate()
		p.handleAck(req)
		return
	case sip.CANCEL:
		p.handleCancel(req, srv)
		return
	}
	p.stats.uasTransactions.Add(1)
	if rej := ValidateRequest(req, p.supported); rej != nil {
		p.reject(req, srv, rej)
		return
	}
	if p.draining.Load() && !hasToTag(req) {
		// Stopping: calls in progress go on, new ones go elsewhere.
		p.reject(req, srv, &Rejection{Code: 503, Reason: "Service Unavailable - shutting down"})
		return
	}
	lh := LoopHash(req)
	if IsLoop(req, lh, p.IsOurVia) {
		p.reject(req, srv, &Rejection{Code: 482, Reason: "Loop Detected"})
		return
	}
	t = p.newTransaction(req, srv, lh)
	if t == nil {
		return
	}
	consumed, params := p.preprocessRoute(t.req)
	r := &Request{
		Request:       t.req,
		Source:        req.Source(),
		Transport:     req.Transport(),
		Initial:       !hasToTag(req),
		RouteConsumed: consumed,
		RouteParams:   params,
		Tx:            t,
		Sender:        p,
	}
	d := p.router.Route(r)
	if d.Kind != Defer {
		t.Decide(d)
	}
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	return to != nil && Tag(to.Params) != ""
}

// reject answers a request that failed validation.
func (p *Proxy) reject(req *sip.Request, srv *sip.ServerTx, rej *Rejection) {
	p.stats.rejected.Add(1)
	res := sip.NewResponseFromRequest(req, rej.Code, rej.Reason, nil)
	if len(rej.Unsupported) > 0 {
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(rej.Unsupported, ", ")))
	}
	p.log.Info("request rejected", "callid", callID(req), "method", string(req.Method),
		"code", rej.Code, "reason", rej.Reason, "source", req.Source())
	if err := srv.Respond(res); err != nil {
		p.log.Warn("sending rejection failed", "callid", callID(req), "error", err)
	}
	p.stats.localReplies[class(rej.Code)].Add(1)
	p.stats.finalClass[class(rej.Code)].Add(1)
}

func callID(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// handleAck relays an ACK for a 2xx (or any ACK that matched no server
// transaction) statelessly along its route set.
func (p *Proxy) handleAck(req *sip.Request) {
	if rej := ValidateRequest(req, p.supported); rej != nil {
		p.log.Debug("ACK dropped", "callid", callID(req), "reason", rej.Reason)
		return
	}
	lh := LoopHash(req)
	if IsLoop(req, lh, p.IsOurVia) {
		p.log.Debug("ACK dropped: loop", "callid", callID(req))
		return
	}
	consumed, params := p.preprocessRoute(req)
	r := &Request{Request: req, Source: req.Source(), Transport: req.Transport(),
		Initial: !hasToTag(req), RouteConsumed: consumed, RouteParams: params, Sender: p}
	d := p.router.Route(r)
	if d.Kind != Relay {
		return
	}
	dst := ""
	if len(d.Targets) > 0 {
		tg := d.Targets[0]
		if tg.URI.Host != "" {
			req.Recipient = *tg.URI.Clone()
		}
		dst = tg.Dst
	}
	if err := p.forwardStateless(req, lh, dst); err != nil {
		p.log.Info("ACK not forwarded", "callid", callID(req), "error", err)
	}
}

// forwardStateless sends a request on without a transaction (§16.11): the
// branch is derived from the request so a retransmission gets the same one.
func (p *Proxy) forwardStateless(req *sip.Request, loopHash, dst string) error {
	branch := StatelessBranch(req, loopHash)
	SetMaxForwards(req, NextMaxForwards(req))
	h, err := routeOut(req, dst)
	if err != nil {
		return err
	}
	l := p.pickListener(h.transport, h.host)
	if l == nil {
		return fmt.Errorf("no %s listener to send from", h.transport)
	}
	req.PrependHeader(newVia(l, h.transport, branch))
	route(req, h, l)
	if err := p.tp.WriteMsg(req); err != nil {
		p.stats.sendFailures.Add(1)
		return err
	}
	p.stats.statelessFwd.Add(1)
	return nil
}

// handleCancel deals with a CANCEL sipgo could not match to an INVITE
// server transaction: either the INVITE is already answered, or the CANCEL
// overtook it and is held for CancelWait, or it matches nothing (481).
func (p *Proxy) handleCancel(req *sip.Request, srv *sip.ServerTx) {
	p.stats.cancelsReceived.Add(1)
	key := inviteKey(req)
	if key == "" {
		p.reject(req, srv, &Rejection{Code: 400, Reason: "Bad Request - CANCEL without Via branch"})
		return
	}
	h := &heldCancel{req: req, srv: srv}
	t := p.invites.holdCancel(key, h, func() {
		h.timer = p.clock.AfterFunc(p.cfg.CancelWait, func() {
			if p.invites.releaseCancel(key, h) {
				p.replyOn(srv, req, 481, "Call/Transaction Does Not Exist")
			}
		})
	})
	if t != nil {
		// sipgo found no server transaction although the INVITE is ours:
		// it already has its final reply; the CANCEL has no effect (§9.2).
		p.replyOn(srv, req, 200, "OK")
	}
}

func (p *Proxy) replyOn(srv *sip.ServerTx, req *sip.Request, code int, reason string) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if err := srv.Respond(res); err != nil {
		p.log.Info("reply failed", "callid", callID(req), "code", code, "error", err)
		return
	}
	p.stats.localReplies[class(code)].Add(1)
}

// onStrayResponse forwards a response that matches no client transaction
// (§16.7 step 3 with §16.11): typically a 2xx retransmission after the
// client transaction ended. Responses not carrying our Via are dropped.
func (p *Proxy) onStrayResponse(res *sip.Response) {
	top := res.Via()
	if top == nil || !p.IsOurVia(top) {
		return
	}
	up := forwardCopy(res)
	next := up.Via()
	if next == nil {
		return
	}
	up.SetDestination(viaDestination(next))
	if err := p.tp.WriteMsg(up); err != nil {
		p.log.Debug("stray response not forwarded", "callid", callID(res), "error", err)
		return
	}
	p.stats.statelessFwd.Add(1)
}

// viaDestination is where a response goes by its top Via (RFC 3261
// §18.2.2, RFC 3581): received and rport when present, else sent-by.
func viaDestination(v *sip.ViaHeader) string {
	host, port := v.Host, v.Port
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = r
	}
	if rp, ok := v.Params.Get("rport"); ok && rp != "" {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	return net.JoinHostPort(trimBrackets(host), strconv.Itoa(port))
}

// forwardCopy is the response to send upstream: every header but our top
// Via. Header values are shared with res: neither copy is modified after.
func forwardCopy(res *sip.Response) *sip.Response {
	up := sip.NewResponse(res.StatusCode, res.Reason)
	up.SipVersion = res.SipVersion
	skipped := false
	for _, h := range res.Headers() {
		if !skipped && h.Name() == "Via" {
			skipped = true
			continue
		}
		up.AppendHeader(h)
	}
	if body := res.Body(); body != nil {
		up.SetBody(body)
	}
	return up
}

var sipVersionPrefix = []byte("SIP/")

// readFilter sees every UDP datagram before sipgo parses it, to answer the
// ones sipgo would silently drop: too large (513) or unparsable (400).
func (p *Proxy) readFilter(props sip.TransportReadProps, data []byte) ([]byte, error) {
	if props.Transport != "UDP" {
		return data, nil
	}
	if len(data) > p.cfg.MaxMessageSize {
		p.rawAnswer(props, data, 513, "Message Too Large")
		return nil, nil
	}
	if bytes.HasPrefix(data, sipVersionPrefix) {
		// A response is never answered: whatever sipgo makes of it, the
		// extra parse would buy nothing.
		return data, nil
	}
	if reason := RawHeaderProblem(data); reason != "" {
		p.rawAnswer(props, data, 400, reason)
		return nil, nil
	}
	if _, err := p.parser.ParseSIP(data); err != nil {
		code, reason := DiagnoseParseFailure(data, err)
		p.rawAnswer(props, data, code, reason)
		return nil, nil
	}
	return data, nil
}

func (p *Proxy) rawAnswer(props sip.TransportReadProps, data []byte, code int, reason string) {
	p.stats.rejected.Add(1)
	src := props.RemoteAddr.String()
	out := RawReply(data, code, reason)
	p.log.Info("message refused before parsing", "source", src, "code", code, "reason", reason)
	if out == nil {
		return
	}
	var pc net.PacketConn
	local := props.LocalAddr.String()
	for _, l := range *p.listeners.Load() {
		if l.pc != nil && l.pc.LocalAddr().String() == local {
			pc = l.pc
			break
		}
	}
	if pc == nil {
		return
	}
	dst, err := net.ResolveUDPAddr("udp", RawReplyDestination(data, src))
	if err != nil {
		return
	}
	if _, err := pc.WriteTo(out, dst); err == nil {
		p.stats.localReplies[class(code)].Add(1)
	}
}

// Ready tells whether the proxy takes new requests: it listens and is not
// shutting down.
func (p *Proxy) Ready() error {
	switch {
	case p.closed.Load():
		return errors.New("tm: proxy closed")
	case p.draining.Load():
		return errors.New("tm: shutting down")
	case len(*p.listeners.Load()) == 0:
		return errors.New("tm: no listener")
	}
	return nil
}

// Drain stops taking new dialogs and requests outside dialogs: they get 503,
// so the upstream fails over, and Ready says so. Requests within dialogs
// are still relayed.
func (p *Proxy) Drain() { p.draining.Store(true) }

// InUse is the number of server transactions in progress.
func (p *Proxy) InUse() int64 { return max(p.stats.inuse.Load(), 0) }

// EndPending gives every INVITE still waiting for its final reply the reply
// code/reason upstream and CANCELs its branches (t_reply), as a stopping
// proxy must not leave a caller ringing into nothing. It returns how many
// it ended.
func (p *Proxy) EndPending(code int, reason string) int {
	n := 0
	for _, t := range p.invites.pending() {
		if t.Reply(code, reason, ReasonHeader("SIP", code, reason)) == nil {
			n++
		}
	}
	return n
}

// Shutdown drains (see Drain) and waits until no transaction is in
// progress or ctx ends, so calls in setup get their final reply and
// in-dialog requests keep flowing meanwhile.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.draining.Store(true)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for p.stats.inuse.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("tm: %d transactions still in progress: %w", p.stats.inuse.Load(), ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}
