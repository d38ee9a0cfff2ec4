package tm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

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
	// Clock runs every timer of the proxy: the branches' fr_timeout and
	// fr_inv_timeout and the RFC 3261 §17 timers of the transactions.
	// Default: a timer wheel of 10 ms ticks driven by the proxy.
	Clock Clock
	// Transport tunes the UDP and TCP layer (sockets per address, TCP
	// limits); its Handler, Parser, Logger and MaxMessageSize are the
	// proxy's.
	Transport transport.Options
}

// hook is one hook with the name of the module it came from, for the log
// of a panic.
type hook[T any] struct {
	module string
	h      T
}

// Proxy is a transaction-stateful forking SIP proxy. It owns its
// transports (package transport) and its transactions (package txn); sipgo
// is its message model and parser.
type Proxy struct {
	cfg       Config
	router    Router // the whole chain: every module's middleware around Options.Router
	branch    []hook[BranchHook]
	reply     []hook[ReplyHook]
	failure   []hook[FailureHook]
	observers []hook[Observer]
	localObs  []hook[LocalObserver] // the observers that are LocalObservers
	supported []string
	log       *slog.Logger
	clock     Clock
	wheel     *wheel.Wheel // the clock when it is tm's wheel (armTx)
	timers    txn.Timers
	// cancelHdrs are Config.CancelHeaders, parsed.
	cancelHdrs []sip.Header

	parser *Parser
	tp     *transport.Transport
	srvTxs *txTable[*srvTx]
	cliTxs *txTable[*cliTx]
	// srvLinger and cliLinger keep the transactions of srvTxs and cliTxs
	// that completed and only absorb retransmissions (linger.go).
	srvLinger, cliLinger *lingerTable

	listeners atomic.Pointer[[]*listener]
	lmu       sync.Mutex // serialises Listen
	invites   *inviteTable
	locals    localInvites // INVITEs of our own waiting for their final reply
	dns       resolver
	stats     Stats
	// parseFailures and rejects log what peers send wrong, summarised.
	parseFailures logSummary
	rejects       logSummary
	nextID        atomic.Uint64
	closed        atomic.Bool
	draining      atomic.Bool
	wg            sync.WaitGroup
	// stop ends the wheel and the local requests in flight when the proxy
	// closes.
	stop    context.Context
	stopped context.CancelFunc
}

type listener struct {
	network   string // "udp", "tcp"
	transport string // "UDP", "TCP"
	host      string // advertised in Via and Record-Route
	port      int
	ip        netip.Addr     // the address listened on, unmapped
	addr      netip.AddrPort // bound
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
		srvTxs:    newTxTable[*srvTx](),
		cliTxs:    newTxTable[*cliTx](),
	}
	p.srvLinger, p.cliLinger = newLingerTable(&p.stats.lingering), newLingerTable(&p.stats.lingering)
	p.stats.init()
	for _, h := range o.Config.CancelHeaders {
		name, value, _ := CheckHeaderLine(h) // Validate refused a bad one
		p.cancelHdrs = append(p.cancelHdrs, sip.NewHeader(name, value))
	}
	p.parseFailures.msg = "messages that do not parse (answered 400)"
	p.rejects.msg = "requests refused by validation"
	p.stop, p.stopped = context.WithCancel(context.Background())
	if p.log == nil {
		p.log = slog.Default()
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
			if lo, ok := m.Observer.(LocalObserver); ok {
				p.localObs = append(p.localObs, hook[LocalObserver]{name, lo})
			}
		}
	}
	c := p.cfg
	// fr_timeout, not Timer B/F, decides when a branch gives up: the
	// transaction timers wait a little longer. wt_timer is how long every
	// completed transaction stays (OpenSIPS' wait state): Timers D, J, L
	// and M; the RFC's 32 s held each call's transactions 6x longer.
	p.timers = txn.Timers{T1: c.T1, T2: c.T2, T4: c.T4, TimerB: c.FrTimeout + c.T1, TimerF: c.FrTimeout + c.T1,
		TimerD: c.WtTimer, Linger: c.WtTimer}.WithDefaults()
	if w, ok := p.clock.(*wheel.Wheel); ok {
		p.wheel = w
	}
	if p.clock == nil {
		w := wheel.New(10*time.Millisecond, 4096)
		p.clock = w
		p.wheel = w
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = w.Run(p.stop)
		}()
	}
	p.sweepLingering()
	p.parser = NewParser(c.MaxMessageSize)
	p.parser.reuseText = c.ReuseMessageText
	to := o.Transport
	to.Handler = p.onMessage
	to.Parser = p.parser
	to.Logger = p.log // the transport adds its component
	to.MaxMessageSize = c.MaxMessageSize
	if to.UDPReadBuffer == 0 {
		// The readers drain a socket; a burst must wait in the kernel
		// rather than be dropped (the kernel caps this at rmem_max).
		to.UDPReadBuffer, to.UDPWriteBuffer = udpReadBuffer, udpReadBuffer
	}
	// A listener that stops is logged by the transport and fails Ready.
	tp, err := transport.New(to)
	if err != nil {
		p.stopped()
		p.wg.Wait()
		return nil, fmt.Errorf("tm: transport: %w", err)
	}
	p.tp = tp
	empty := []*listener{}
	p.listeners.Store(&empty)
	return p, nil
}

// udpReadBuffer is the socket buffer asked for on UDP sockets.
const udpReadBuffer = 4 << 20

// Stats returns the live counters.
func (p *Proxy) Stats() *Stats { return &p.stats }

// PendingInvites returns the INVITE transactions waiting for their final
// reply (t_reply and t_cancel by id in the management API), in no order.
// It walks the whole table: for operators, not for the request path.
func (p *Proxy) PendingInvites() []*Transaction {
	all := p.invites.pending()
	out := all[:0]
	for _, t := range all {
		if t.FinalCode() == 0 {
			out = append(out, t)
		}
	}
	return out
}

// PendingInvite finds a pending INVITE transaction by its ID; nil when
// none (never was, or got its final reply).
func (p *Proxy) PendingInvite(id uint64) *Transaction {
	for _, t := range p.PendingInvites() {
		if t.ID() == id {
			return t
		}
	}
	return nil
}

// PendingInviteByCallID finds a pending INVITE transaction by the Call-ID
// and CSeq number of its request (cseq 0: any), as OpenSIPS'
// t_reply_by_callid does; nil when none. It looks through every pending
// INVITE: for management calls and the odd script, not per message.
func (p *Proxy) PendingInviteByCallID(callID string, cseq uint32) *Transaction {
	for _, t := range p.PendingInvites() {
		found := false
		t.WithOriginal(func(r *sip.Request) {
			if r.CallID() == nil || r.CallID().Value() != callID {
				return
			}
			cs := r.CSeq()
			found = cseq == 0 || (cs != nil && cs.SeqNo == cseq)
		})
		if found {
			return t
		}
	}
	return nil
}

// TransportStats returns the counters of the transport layer.
func (p *Proxy) TransportStats() *transport.Stats { return p.tp.Stats() }

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
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s:%s: %w", network, addr, err)
	}
	l := &listener{network: network, transport: strings.ToUpper(network), ip: ap.Addr().Unmap()}
	switch network {
	case "udp":
		l.addr, err = p.tp.ListenUDP(ap)
	case "tcp":
		l.addr, err = p.tp.ListenTCP(ap)
	default:
		return nil, fmt.Errorf("listen %s:%s: transport %q is not supported (udp, tcp)", network, addr, network)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %s:%s: %w", network, addr, err)
	}
	l.port = int(l.addr.Port())
	l.host = ip.String()
	if advertise != "" {
		if h, ps, err := net.SplitHostPort(advertise); err == nil {
			n, perr := strconv.Atoi(ps)
			if perr != nil || n <= 0 || n > 65535 {
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
	if network == "udp" {
		return net.UDPAddrFromAddrPort(l.addr), nil
	}
	return net.TCPAddrFromAddrPort(l.addr), nil
}

// Close stops the listeners and every transaction.
func (p *Proxy) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.stopped()
	err := p.tp.Close()
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
		if ip, err := netip.ParseAddr(host); err == nil && ip.Unmap() == l.ip {
			return true
		}
	}
	return false
}

// pickListener chooses the socket a message to h leaves from: same
// transport, same address family when the destination is an IP literal.
func (p *Proxy) pickListener(transport, host string) *listener {
	ip, _ := netip.ParseAddr(trimBrackets(host))
	return p.pickListenerFor(transport, ip)
}

// pickListenerFor is pickListener for an address already parsed; the
// zero Addr (a host name) takes the first listener of the transport.
func (p *Proxy) pickListenerFor(transport string, ip netip.Addr) *listener {
	v4 := ip.Unmap().Is4()
	var anyTransport *listener
	for _, l := range *p.listeners.Load() {
		if l.transport != transport {
			continue
		}
		if anyTransport == nil {
			anyTransport = l
		}
		if !ip.IsValid() || v4 == l.ip.Is4() {
			return l
		}
	}
	return anyTransport
}

// ErrNoSocket: a socket named to send from is not one ("transport:ip:port"),
// none of the proxy's listeners, or not of the next hop's transport.
var ErrNoSocket = errors.New("no such listening socket")

// socketListener finds the listener a socket "transport:ip:port" names:
// the one bound there, or a wildcard listener of the port, then sending
// from ip (its advertised host stays in Via). The host must be an IP
// address: a socket is local, nothing is resolved.
func (p *Proxy) socketListener(socket string) (*listener, error) {
	tr, host, port, err := ParseDst(socket)
	if err != nil {
		return nil, fmt.Errorf("socket %q: %w: %v", socket, ErrNoSocket, err)
	}
	ip, err := netip.ParseAddr(trimBrackets(host))
	if err != nil {
		return nil, fmt.Errorf("socket %q: %w: host %q is not an IP address", socket, ErrNoSocket, host)
	}
	ip = ip.Unmap()
	var wild *listener
	for _, l := range *p.listeners.Load() {
		if l.transport != tr || int(l.addr.Port()) != port {
			continue
		}
		if l.ip == ip {
			return l, nil
		}
		if l.ip.IsUnspecified() && l.ip.Is4() == ip.Is4() && wild == nil {
			wild = l
		}
	}
	if wild != nil {
		c := *wild
		c.ip, c.addr = ip, netip.AddrPortFrom(ip, uint16(port))
		return &c, nil
	}
	return nil, fmt.Errorf("socket %q: %w (listening: %s)", socket, ErrNoSocket, p.socketNames())
}

// socketNames lists the listeners as sockets, for an error message.
func (p *Proxy) socketNames() string {
	var b strings.Builder
	for i, l := range *p.listeners.Load() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(l.network)
		b.WriteByte(':')
		b.WriteString(l.addr.String())
	}
	return b.String()
}

// listenerOut is the listener a request to h leaves from: from when one was
// named (it must serve h's transport), else one picked for h.
func (p *Proxy) listenerOut(h hop, from *listener) (*listener, error) {
	if from != nil {
		if from.transport != h.transport {
			return nil, fmt.Errorf("socket %s:%s: %w: the next hop %s:%d is %s", from.network, from.addr, ErrNoSocket,
				h.host, h.port, h.transport)
		}
		return from, nil
	}
	l := p.pickListener(h.transport, h.host)
	if l == nil {
		return nil, fmt.Errorf("no %s listener to send from", h.transport)
	}
	return l, nil
}

func (p *Proxy) hasTransport(transport string) bool {
	for _, l := range *p.listeners.Load() {
		if l.transport == transport {
			return true
		}
	}
	return false
}

// init makes b our Via for a message leaving through l: the header and
// its parameters in one allocation (sip.NewParams and two Adds were
// three); the spare room takes a received= or another parameter a hook
// adds.
func (b *viaBlock) init(l *listener, transport, branch string) {
	b.kv[0] = sip.HeaderKV{K: "branch", V: branch}
	b.kv[1] = sip.HeaderKV{K: "rport"}
	b.h = sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: l.host, Port: l.port, Params: b.kv[:2]}
}

// ourViaBlock is our Via with the bytes of its branch: one allocation
// where the branch string was another (per branch and per ACK relayed).
// The bytes are written once, before the string is made of them, and
// never again.
type ourViaBlock struct {
	viaBlock
	branch [maxBranchLen]byte
}

// newBranchVia builds our Via for a message leaving through l, with the
// branch of a client transaction (appendBranch); stateless, when not nil,
// makes it the branch of a stateless relay of that request instead
// (appendStatelessBranch; call it before our Via is on the request).
func newBranchVia(l *listener, transport, loopHash string, stateless *sip.Request) *sip.ViaHeader {
	return new(ourViaBlock).build(l, transport, loopHash, stateless)
}

// build is newBranchVia in b: a block that lives as long as the message
// the Via goes on (its clone's, its own block's).
func (b *ourViaBlock) build(l *listener, transport, loopHash string, stateless *sip.Request) *sip.ViaHeader {
	*b = ourViaBlock{}
	var br []byte
	if stateless != nil {
		br = appendStatelessBranch(b.branch[:0], stateless, loopHash)
	} else {
		br = appendBranch(b.branch[:0], loopHash)
	}
	// br is b.branch unless it outgrew it (then fresh memory): either way
	// nothing writes to it again.
	b.init(l, transport, unsafe.String(unsafe.SliceData(br), len(br)))
	return &b.h
}

// send hands a message's bytes to the transport; errors are counted.
func (p *Proxy) send(data []byte, dst transport.Dest) error {
	if err := p.tp.Send(data, dst); err != nil {
		p.stats.sendFailures.Add(1)
		return err
	}
	return nil
}

// destOf is where a request to hop h leaves through listener l: the hop's
// address (resolved when it is a name), from l's socket.
func (p *Proxy) destOf(h hop, l *listener) (transport.Dest, error) {
	addr, err := p.dns.addr(p.stop, h.host, h.port)
	if err != nil {
		return transport.Dest{}, err
	}
	d := transport.Dest{Transport: h.transport, Addr: addr}
	if l != nil {
		d.Local = l.addr
	}
	return d, nil
}

// responseDest is where the responses to a request go (RFC 3261 §18.2.2
// with RFC 3581): back on its connection while it is open, else to its
// source address, with the source port when the client asked for rport,
// else the Via's sent-by port. Never to a host read from the Via.
func responseDest(req *sip.Request, m *transport.Message) transport.Dest {
	d := transport.Dest{Transport: m.Transport, Addr: m.Remote, Conn: m.Conn, Local: m.Local}
	via := req.Via()
	if via == nil {
		return d
	}
	if _, rport := Param(via.Params, "rport"); rport {
		return d
	}
	// Without rport: over UDP the sent-by port (§18.2.2); over TCP the
	// connection the request came on, and when that has closed a new one
	// to the source address (the received parameter) and the sent-by
	// port. Never the sent-by host: the proxy does not resolve or dial a
	// name it read from an unsolicited message.
	port := via.Port
	if port == 0 {
		port = 5060
	}
	d.Addr = netip.AddrPortFrom(m.Remote.Addr(), uint16(port))
	return d
}

// stampVia writes received and rport into the top Via of a request as
// received (RFC 3261 §18.2.1, RFC 3581 §4), so that the responses that come
// back through us go where the request came from without any name lookup.
func stampVia(req *sip.Request, src netip.AddrPort) {
	via := req.Via()
	if via == nil {
		return
	}
	// The values are cut from the request's Source ("ip:port", the
	// transport's string of src, kept per source): formatting src again
	// was a heap string per request.
	ipStr, portStr := sourceParts(req.Source(), src)
	if sent, err := netip.ParseAddr(trimBrackets(via.Host)); err != nil || sent.Unmap() != src.Addr() {
		via.Params = setParam(via.Params, "received", ipStr)
	}
	if _, ok := Param(via.Params, "rport"); ok {
		via.Params = setParam(via.Params, "rport", portStr)
	}
}

// sourceParts returns the address and port of src as strings: slices of
// source when it is src's "ip:port" form, else formatted.
func sourceParts(source string, src netip.AddrPort) (ip, port string) {
	if i := strings.LastIndexByte(source, ':'); i > 0 {
		ip, port = trimBrackets(source[:i]), source[i+1:]
		if a, err := netip.ParseAddr(ip); err == nil && a.Unmap() == src.Addr() {
			if n, err := strconv.Atoi(port); err == nil && n == int(src.Port()) {
				return ip, port
			}
		}
	}
	return src.Addr().String(), strconv.Itoa(int(src.Port()))
}

func setParam(p sip.HeaderParams, k, v string) sip.HeaderParams {
	for i := range p {
		if strings.EqualFold(strings.TrimSpace(p[i].K), k) {
			p[i].V = v
			return p
		}
	}
	return append(p, sip.HeaderKV{K: k, V: v})
}

var sipVersionPrefix = []byte("SIP/")

// onMessage is the transport's handler: every message read, on the
// goroutine that read it.
func (p *Proxy) onMessage(m transport.Message) {
	if m.Err != nil {
		p.onBadMessage(&m)
		return
	}
	switch msg := m.Msg.(type) {
	case *sip.Request:
		p.onRequest(msg, &m)
		if msg.Method != sip.CANCEL {
			// The reader's reference (msgblock.go). A CANCEL's stays: a
			// CANCEL held for its INVITE is read from a timer, uncounted.
			releaseReq(msg)
		}
	case *sip.Response:
		p.onResponse(msg)
		releaseRes(msg) // the reader's reference (msgblock.go)
	}
}

// onBadMessage answers a request whose bytes did not parse (§16.3 step 1,
// §18.3): 400 with a reason naming what is wrong, 513 when too large, 416
// for a Request-URI scheme we do not handle. Responses are dropped. The
// answer goes where the bytes came from, on their connection.
func (p *Proxy) onBadMessage(m *transport.Message) {
	p.parseFailures.observe(p.log, p.clock.Now(), m.Remote, m.Err)
	if bytes.HasPrefix(m.Raw, sipVersionPrefix) {
		return
	}
	code, reason := DiagnoseParseFailure(m.Raw, m.Err)
	p.rawAnswer(m, code, reason)
}

func (p *Proxy) rawAnswer(m *transport.Message, code int, reason string) {
	p.stats.rejected.Add(1)
	out := RawReply(m.Raw, code, reason)
	if out == nil {
		return
	}
	dst := transport.Dest{Transport: m.Transport, Addr: m.Remote, Conn: m.Conn, Local: m.Local}
	if m.Transport == transport.UDP {
		if a, err := netip.ParseAddrPort(rawReplyDestination(m.Raw, m.Remote.String())); err == nil {
			dst.Addr = a
		}
	}
	if p.send(out, dst) == nil {
		p.stats.local(code)
		p.localReplyWire(out, code, reason)
	}
}

// localRequest shows a request tm made to the LocalObservers.
func (p *Proxy) localRequest(req *sip.Request) {
	for _, h := range p.localObs {
		p.observeLocal(h.module, "local request", callID(req), func() { h.h.OnLocalRequest(req) })
	}
}

// localReply shows a reply tm made to the LocalObservers.
func (p *Proxy) localReply(res *sip.Response) {
	for _, h := range p.localObs {
		p.observeLocal(h.module, "local reply", callID(res), func() { h.h.OnLocalReply(res) })
	}
}

// localReplyWire is localReply for a reply written straight to the wire
// (the 100, a raw 400): parsed back, and only when someone looks. A 400
// that copies the headers its request could not parse with may not parse
// either: the observers then get its status line alone.
func (p *Proxy) localReplyWire(data []byte, code int, reason string) {
	if len(p.localObs) == 0 {
		return
	}
	if m, err := p.parser.ParseSIP(data); err == nil {
		if res, ok := m.(*sip.Response); ok {
			p.localReply(res)
			return
		}
	}
	p.localReply(sip.NewResponse(code, reason))
}

// sweepLingering frees the lingering transactions that expired, once a
// second on tm's wheel until the proxy stops. Lookups check expiry on
// their own and each new record frees the expired ones ahead of it: the
// sweep only returns the memory once the load stops. Not on another
// clock (a test's fake one counts its timers).
func (p *Proxy) sweepLingering() {
	if p.wheel == nil || p.stop.Err() != nil {
		return
	}
	now := p.clock.Now()
	p.srvLinger.sweep(now)
	p.cliLinger.sweep(now)
	p.wheel.AfterFunc(time.Second, p.sweepLingering)
}

// onRequest is the entry of every request that parsed.
func (p *Proxy) onRequest(req *sip.Request, m *transport.Message) {
	// RFC 3261 §7.1: methods are case-sensitive; sipgo upper-cases the
	// request line's, which would then differ from the CSeq's.
	fixMethodCase(req, m.Raw)
	p.stats.requests[methodIndex(string(req.Method))].Add(1)
	f, ok := requestFields(req, p.cfg.RURIMatching, p.cfg.Via1Matching)
	if !ok {
		if !req.IsAck() {
			p.reject(req, m, nil, &Rejection{Code: 400, Reason: "Bad Request - missing Via or CSeq header"})
		}
		return
	}
	keyBuf := txn.AppendServerKey(make([]byte, 0, 96), &f)
	if s, ok := p.srvTxs.get(keyBuf); ok {
		// A retransmission (or the ACK of a non-2xx final, or a CANCEL
		// retransmitted) of a transaction we have.
		if req.IsAck() {
			if s.step(txn.Event{Kind: txn.EvRecvACK}).passACK {
				// RFC 6026: the ACK of a 2xx an RFC 2543 UA sent with the
				// INVITE's branch; it goes on like any ACK of a 2xx.
				p.handleAck(req, m)
			}
			return
		}
		p.stats.retransAbsorbed.Add(1)
		s.step(txn.Event{Kind: txn.EvRecvRequest})
		return
	}
	if r, ok := p.srvLinger.get(p.clock, keyBuf); ok {
		// A retransmission of a completed transaction (or the ACK of a
		// non-2xx final retransmitted): absorbed, or answered with the
		// final again (Figure 8's Completed).
		if req.IsAck() && r.act == lingerAccepted {
			p.handleAck(req, m) // as passACK above
			return
		}
		if !req.IsAck() {
			p.stats.retransAbsorbed.Add(1)
			if r.act == lingerResend {
				p.stats.retransmittedReply()
				p.send(r.wire(), r.dest())
			}
		}
		return
	}
	stampVia(req, m.Remote)
	switch req.Method {
	case sip.ACK:
		// An ACK that matches no transaction is the ACK of a 2xx: a
		// transaction of its own, relayed statelessly (§16.11).
		p.handleAck(req, m)
		return
	case sip.CANCEL:
		p.handleCancel(req, m, &f, keyBuf)
		return
	}
	s, added := p.newSrvTx(keyBuf, req, responseDest(req, m), m.Transport == transport.TCP)
	if !added {
		// A retransmission raced the first copy in.
		s.step(txn.Event{Kind: txn.EvRecvRequest})
		return
	}
	p.serveRequest(req, m, s)
}

// fixMethodCase restores the method of the request line as it was written
// when the parser changed its case.
func fixMethodCase(req *sip.Request, raw []byte) {
	sp := bytes.IndexByte(raw, ' ')
	if sp <= 0 || sp > 32 {
		return
	}
	if tok := raw[:sp]; string(tok) != string(req.Method) && strings.EqualFold(string(tok), string(req.Method)) {
		req.Method = sip.RequestMethod(tok)
	}
}

// serveRequest runs a new request that opened server transaction s.
func (p *Proxy) serveRequest(req *sip.Request, m *transport.Message, s *srvTx) {
	var t *Transaction
	defer func() {
		// A bug in a router or hook must cost one request, not the
		// process with every call in it.
		if r := recover(); r != nil {
			p.log.Error("panic while handling a request", "callid", callID(req), "method", string(req.Method),
				"panic", r, "stack", string(debug.Stack()))
			if t != nil {
				t.Reply(500, "Server Internal Error")
			} else {
				p.replyLocal(s, req, 500, "Server Internal Error")
			}
		}
	}()
	if reason := rawHeaderProblem(m.Raw); reason != "" {
		p.reject(req, m, s, &Rejection{Code: 400, Reason: reason})
		return
	}
	if rej := p.sizeLimits(req); rej != nil {
		p.reject(req, m, s, rej)
		return
	}
	if rej := ValidateRequest(req, p.supported); rej != nil {
		p.reject(req, m, s, rej)
		return
	}
	if !hasToTag(req) {
		// Overloaded: too many transactions in progress, or behind the
		// offered load (tm.shed_congested). New work goes elsewhere;
		// requests within dialogs (a BYE frees what a call holds) go on.
		var count *atomic.Uint64
		switch {
		case p.cfg.MaxTransactions > 0 && p.stats.inuse.Load() >= int64(p.cfg.MaxTransactions):
			count = &p.stats.overloaded
		case m.Congested && p.cfg.ShedCongested:
			count = &p.stats.shed
		}
		if count != nil {
			count.Add(1)
			p.reject(req, m, s, &Rejection{Code: 503, Reason: "Service Unavailable - overloaded",
				Headers: []sip.Header{sip.NewHeader("Retry-After", "5")}})
			return
		}
	}
	if p.draining.Load() && !hasToTag(req) {
		// Stopping: calls in progress go on, new ones go elsewhere.
		p.reject(req, m, s, &Rejection{Code: 503, Reason: "Service Unavailable - shutting down"})
		return
	}
	lh := computeLoopHash(req)
	if isLoop(req, lh, p.IsOurVia) {
		p.reject(req, m, s, &Rejection{Code: 482, Reason: "Loop Detected"})
		return
	}
	t = p.newTransaction(req, m, s, lh)
	if t == nil {
		return
	}
	tmpl := t.routing.Load() // the router's reference, given back by Decide
	if tmpl == nil || t.req.Load() == nil {
		t.releaseRouting()
		return // a CANCEL ended it already
	}
	consumed, params := p.preprocessRoute(tmpl)
	r := routeReq(tmpl)
	*r = Request{
		Request:       tmpl,
		Source:        req.Source(),
		Transport:     m.Transport,
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

// sizeLimits refuses a request with more Via headers or headers than the
// proxy keeps for a transaction's life (max_via_headers, max_headers).
func (p *Proxy) sizeLimits(req *sip.Request) *Rejection {
	hs := req.Headers()
	if len(hs) > p.cfg.MaxHeaders {
		return &Rejection{Code: 400, Reason: fmt.Sprintf("Bad Request - more than %d headers", p.cfg.MaxHeaders)}
	}
	vias := 0
	for _, h := range hs {
		if _, ok := h.(*sip.ViaHeader); ok {
			vias++
		}
	}
	if vias > p.cfg.MaxViaHeaders {
		return &Rejection{Code: 400, Reason: fmt.Sprintf("Bad Request - more than %d Via headers", p.cfg.MaxViaHeaders)}
	}
	return nil
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	return to != nil && Tag(to.Params) != ""
}

// reply answers a request locally on its server transaction.
func (p *Proxy) replyLocal(s *srvTx, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if s.respond(res) {
		p.stats.local(code)
		p.localReply(res)
	}
}

// replyTrying sends the 100 (Trying) of an INVITE (§16.2): what
// replyLocal sends, written straight from the request's headers. Through a
// sip.Response it was ten heap objects per call.
func (p *Proxy) replyTrying(s *srvTx, req *sip.Request) {
	bp := wireBuf()
	// The server transaction copies it: the answer to a retransmitted
	// INVITE.
	data := appendTrying((*bp)[:0], req)
	if s.respondBytes(data, 100) {
		p.stats.local(100)
		p.localReplyWire(data, 100, "Trying")
	}
	putWire(bp, data)
}

// appendTrying writes the 100 (Trying) of req as sip.NewResponseFromRequest
// and marshal make it: the request's Vias, From, To, Call-ID and CSeq, in
// that order, its Timestamp (§8.2.6.1), Content-Length 0, no To tag.
func appendTrying(b []byte, req *sip.Request) []byte {
	b = append(b, req.SipVersion...)
	b = append(b, " 100 Trying\r\n"...)
	hs := req.Headers()
	for _, h := range hs {
		if v, ok := h.(*sip.ViaHeader); ok {
			b = append(appendHeader(b, v), "\r\n"...)
		}
	}
	if h := req.From(); h != nil {
		b = append(appendHeader(b, h), "\r\n"...)
	}
	if h := req.To(); h != nil {
		b = append(appendHeader(b, h), "\r\n"...)
	}
	if h := req.CallID(); h != nil {
		b = append(appendHeader(b, h), "\r\n"...)
	}
	if h := req.CSeq(); h != nil {
		b = append(appendHeader(b, h), "\r\n"...)
	}
	for _, h := range hs {
		if strings.EqualFold(h.Name(), "Timestamp") {
			b = append(appendHeader(b, h), "\r\n"...)
		}
	}
	return append(b, "Content-Length: 0\r\n\r\n"...)
}

// reject answers a request that failed validation. Without a transaction
// (s nil: an unusable Via or CSeq) the answer is stateless.
func (p *Proxy) reject(req *sip.Request, m *transport.Message, s *srvTx, rej *Rejection) {
	p.stats.rejected.Add(1)
	res := sip.NewResponseFromRequest(req, rej.Code, rej.Reason, nil)
	if len(rej.Unsupported) > 0 {
		res.AppendHeader(sip.NewHeader("Unsupported", strings.Join(rej.Unsupported, ", ")))
	}
	for _, h := range rej.Headers {
		res.AppendHeader(h)
	}
	p.rejects.observe(p.log, p.clock.Now(), m.Remote, errors.New(rej.Reason))
	p.log.Debug("request rejected", "callid", callID(req), "method", string(req.Method),
		"code", rej.Code, "reason", rej.Reason, "source", m.Remote.String())
	if s != nil {
		s.respond(res)
	} else {
		p.send(marshal(res), responseDest(req, m))
	}
	p.localReply(res)
	p.stats.local(rej.Code)
	p.stats.finalClass[class(rej.Code)].Add(1)
}

func callID(m sip.Message) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// handleAck relays an ACK for a 2xx statelessly along its route set
// (§16.11).
func (p *Proxy) handleAck(req *sip.Request, m *transport.Message) {
	if rej := ValidateRequest(req, p.supported); rej != nil {
		p.log.Debug("ACK dropped", "callid", callID(req), "reason", rej.Reason)
		return
	}
	lh := computeLoopHash(req)
	if isLoop(req, lh, p.IsOurVia) {
		p.log.Debug("ACK dropped: loop", "callid", callID(req))
		return
	}
	consumed, params := p.preprocessRoute(req)
	r := routeReq(req)
	*r = Request{Request: req, Source: req.Source(), Transport: m.Transport,
		Initial: !hasToTag(req), RouteConsumed: consumed, RouteParams: params, Sender: p}
	d := p.router.Route(r)
	if d.Kind != Relay {
		return
	}
	dst := d.Dst
	if len(d.Targets) > 0 {
		tg := d.Targets[0]
		if tg.URI.Host != "" {
			req.Recipient = *tg.URI.Clone()
		}
		dst = tg.Dst
	}
	if err := p.forwardStateless(req, lh, dst, nil); err != nil {
		p.log.Info("ACK not forwarded", "callid", callID(req), "error", err)
	}
}

// forwardStateless sends a request on without a transaction (§16.11): the
// branch is derived from the request so a retransmission gets the same one.
func (p *Proxy) forwardStateless(req *sip.Request, loopHash, dst string, from *listener) error {
	setMaxForwards(req, nextMaxForwards(req))
	h, err := routeOut(req, dst)
	if err != nil {
		return err
	}
	l, err := p.listenerOut(h, from)
	if err != nil {
		return err
	}
	// The request is the one parsed from the datagram, nobody else's: our
	// Via goes in its block when it has one.
	var via *sip.ViaHeader
	if b := reqBlockOf(req); b != nil {
		via = b.via.build(l, h.transport, loopHash, req)
	} else {
		via = newBranchVia(l, h.transport, loopHash, req)
	}
	prependHeader(&req.MessageData, via)
	d, err := p.destOf(h, l)
	if err != nil {
		return err
	}
	// Nothing keeps the bytes (Send copies what it queues): a pooled
	// buffer.
	bp := wireBuf()
	b := appendMessage((*bp)[:0], req)
	err = p.send(b, d)
	putWire(bp, b)
	if err != nil {
		return err
	}
	p.stats.statelessFwd.Add(1)
	return nil
}

// handleCancel answers a CANCEL (§9.2, §16.10): 200 on a transaction of
// its own, and the INVITE it names cancels its branches; the INVITE's final
// reply then comes from them. A CANCEL that finds no INVITE is held for
// CancelWait (it may have overtaken it), then answered 481.
func (p *Proxy) handleCancel(req *sip.Request, m *transport.Message, f *txn.RequestFields, key []byte) {
	p.stats.cancelsReceived.Add(1)
	if f.Branch == "" {
		p.reject(req, m, nil, &Rejection{Code: 400, Reason: "Bad Request - CANCEL without Via branch"})
		return
	}
	s, added := p.newSrvTx(key, req, responseDest(req, m), m.Transport == transport.TCP)
	if !added {
		s.step(txn.Event{Kind: txn.EvRecvRequest})
		return
	}
	target := string(txn.AppendCancelTargetKey(nil, f))
	reason := ""
	if h := req.GetHeader("Reason"); h != nil {
		reason = h.Value()
	}
	h := &heldCancel{req: req, srv: s, reason: reason}
	t := p.invites.holdCancel(target, h, func() {
		h.timer = p.clock.AfterFunc(p.cfg.CancelWait, func() {
			if p.invites.releaseCancel(target, h) {
				p.replyLocal(s, req, 481, "Call/Transaction Does Not Exist")
			}
		})
	})
	if t == nil {
		return // held
	}
	p.replyLocal(s, req, 200, "OK")
	t.upstreamCancel(t.callerCancelReason(reason))
}

// onResponse matches a response to its client transaction (§17.1.3); one
// that matches none is relayed statelessly when it carries our Via (§16.7
// step 3 with §16.11): typically a 2xx retransmission after its
// transaction ended.
func (p *Proxy) onResponse(res *sip.Response) {
	via := res.Via()
	cseq := res.CSeq()
	if via == nil || cseq == nil {
		return
	}
	branch, _ := Param(via.Params, "branch")
	var buf [96]byte
	key := txn.AppendClientKey(buf[:0], branch, string(cseq.MethodName))
	if c, ok := p.cliTxs.get(key); ok {
		p.stats.receivedReplies.Add(1)
		c.step(txn.Event{Kind: txn.EvRecvResponse, Code: res.StatusCode}, res)
		return
	}
	if r, ok := p.cliLinger.get(p.clock, key); ok {
		// A retransmitted final of a completed transaction: absorbed, a
		// non-2xx one acknowledged again (Figure 5's Completed), a 2xx of
		// an answered branch relayed (Accepted).
		p.stats.receivedReplies.Add(1)
		switch code := res.StatusCode; {
		case r.act == lingerACK && code >= 300 && code <= 699:
			p.stats.retransAbsorbed.Add(1)
			p.send(r.wire(), r.dest())
		case r.act == lingerForward && code >= 200 && code < 300:
			// A further 2xx of an answered branch (Figure 5's Accepted).
			branchOwner{t: r.tx, i: int(r.branch)}.onResponse(nil, res, true)
		}
		return
	}
	if !p.IsOurVia(via) {
		return
	}
	for _, h := range p.observers {
		if so, ok := h.h.(StrayObserver); ok {
			p.observeStray(h.module, so, res)
		}
	}
	next := nextVia(res)
	if next == nil {
		return
	}
	dst, err := viaDest(next)
	if err != nil {
		p.log.Debug("stray response not forwarded", "callid", callID(res), "error", err)
		return
	}
	bp, up := marshalUp(res, nil, 0)
	if p.send(up, dst) == nil {
		p.stats.statelessFwd.Add(1)
	}
	putWire(bp, up)
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

// viaDest is the transport destination of viaDestination. It only takes
// an IP address: the received parameter we stamped on the request stands
// for a sent-by host name.
func viaDest(v *sip.ViaHeader) (transport.Dest, error) {
	a, err := netip.ParseAddrPort(viaDestination(v))
	if err != nil {
		return transport.Dest{}, fmt.Errorf("via %s: no received address to answer to", v.Value())
	}
	tp := strings.ToUpper(v.Transport)
	if tp != transport.TCP {
		tp = transport.UDP
	}
	return transport.Dest{Transport: tp, Addr: a}, nil
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
	if err := p.tp.Err(); err != nil {
		// A SIP listener that stopped (not a temporary accept error, which
		// backs off and retries): this node no longer serves that address.
		return fmt.Errorf("tm: %w", err)
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
		if t.Reply(code, reason, reasonHeader("SIP", code, reason)) == nil {
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
