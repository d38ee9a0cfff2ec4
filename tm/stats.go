package tm

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the counters of the tm manual's "Exported Statistics", kept as
// atomics so the hot path takes no lock; they are exported both to
// Prometheus (Stats is a prometheus.Collector) and to the tm.stats
// management call (Snapshot).
type Stats struct {
	receivedReplies atomic.Uint64
	relayedReplies  [7]atomic.Uint64 // by class 1..6; 0 unused
	localReplies    [7]atomic.Uint64
	uasTransactions atomic.Uint64
	uacTransactions atomic.Uint64 // branches and local requests
	finalClass      [7]atomic.Uint64
	inuse           atomic.Int64
	lingering       atomic.Int64  // completed transactions kept as lingerRecs
	overloaded      atomic.Uint64 // answered 503 at max_transactions
	shed            atomic.Uint64 // answered 503 off a congested socket (shed_congested)
	branches        atomic.Uint64
	frTimeouts      atomic.Uint64
	frInvTimeouts   atomic.Uint64
	cancelsSent     atomic.Uint64
	cancelsReceived atomic.Uint64
	localRequests   atomic.Uint64
	replicated      atomic.Uint64 // copies sent by Transaction.Replicate (t_replicate)
	rejected        atomic.Uint64 // requests refused by validation (400, 420, 482, 483, 513)
	statelessFwd    atomic.Uint64
	sendFailures    atomic.Uint64
	retransSent     atomic.Uint64 // requests and responses we retransmitted (timers A, E, G)
	// The same by the tm manual's intervals: request retransmissions by
	// their place in the series (the first after T1, the second after 2*T1,
	// the third after 4*T1, the rest at T2 and beyond), and replies.
	retransReq      [len(retransIntervals)]atomic.Uint64
	retransRpl      atomic.Uint64
	retransAbsorbed atomic.Uint64 // retransmissions received and answered from the transaction

	requests [len(methodNames)]atomic.Uint64 // received, by method (retransmissions included)
	replies  [700]atomic.Uint64              // sent upstream, relayed or local, by code

	// Histograms, on tm's clock: what the proxy adds to a request, and the
	// call set-up a caller experiences through it.
	relayLatency prometheus.Histogram
	setupRinging prometheus.Histogram
	setupAnswer  prometheus.Histogram
}

// retransIntervals name the request retransmissions of a client
// transaction by their place in the series, as the tm manual's statistics
// do: retransmission_req_T1_1 is the first.
var retransIntervals = [...]string{"T1_1", "T1_2", "T1_3", "T2"}

// retransmittedRequest counts the n-th retransmission of a request.
func (s *Stats) retransmittedRequest(n int) {
	s.retransSent.Add(1)
	s.retransReq[min(max(n, 1), len(retransIntervals))-1].Add(1)
}

// retransmittedReply counts a reply sent again (Timer G, or a request
// retransmission answered).
func (s *Stats) retransmittedReply() {
	s.retransSent.Add(1)
	s.retransRpl.Add(1)
}

// methodNames are the methods counted by name; any other is "other".
var methodNames = [...]string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE",
	"INFO", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REFER", "PUBLISH", "other"}

func methodIndex(m string) int {
	for i, n := range methodNames[:len(methodNames)-1] {
		if n == m {
			return i
		}
	}
	return len(methodNames) - 1
}

// LatencyBuckets are the bounds (seconds) of imsdlg_tm_relay_latency_seconds:
// from a few microseconds of parsing to a limit check waiting on a slow
// Redis.
var LatencyBuckets = prometheus.ExponentialBuckets(0.00002, 2, 16) // 20µs .. 0.66s

// SetupBuckets are the bounds (seconds) of imsdlg_tm_invite_setup_seconds:
// post-dial delay and answer times, from an automaton to a person.
var SetupBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 180}

func (s *Stats) init() {
	s.relayLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "imsdlg_tm_relay_latency_seconds",
		Help:    "Time from a request's arrival to its first branch leaving the proxy (routing, dialog and limit checks included).",
		Buckets: LatencyBuckets,
	})
	setup := func(stage string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "imsdlg_tm_invite_setup_seconds", Help: "Call set-up as the caller sees it through the proxy: from the INVITE's arrival to the first provisional other than 100 (stage ringing) or to the answer (stage answer) relayed upstream.",
			Buckets: SetupBuckets, ConstLabels: prometheus.Labels{"stage": stage},
		})
	}
	s.setupRinging = setup("ringing")
	s.setupAnswer = setup("answer")
}

// relayed counts a reply relayed upstream.
func (s *Stats) relayed(code int) {
	s.relayedReplies[class(code)].Add(1)
	s.replied(code)
}

// local counts a reply the proxy generated.
func (s *Stats) local(code int) {
	s.localReplies[class(code)].Add(1)
	s.replied(code)
}

func (s *Stats) replied(code int) {
	if code >= 100 && code < len(s.replies) {
		s.replies[code].Add(1)
	}
}

func class(code int) int {
	c := code / 100
	if c < 1 || c > 6 {
		return 0
	}
	return c
}

// Snapshot returns the counters under the names of the tm manual.
func (s *Stats) Snapshot() map[string]uint64 {
	m := map[string]uint64{
		"received_replies":   s.receivedReplies.Load(),
		"UAS_transactions":   s.uasTransactions.Load(),
		"UAC_transactions":   s.uacTransactions.Load(),
		"inuse_transactions": uint64(max(s.inuse.Load(), 0)),
		// Completed transactions that only absorb retransmissions, kept
		// as their key and reply bytes (wt_timer, T4).
		"lingering_transactions": uint64(max(s.lingering.Load(), 0)),
		"branches":               s.branches.Load(),
		// The tm manual's timeout_finalresponse: INVITE branches that got a
		// provisional but no final reply in time (fr_inv_timeout); those
		// that got no reply at all are fr_timeouts.
		"timeout_finalresponse":    s.frInvTimeouts.Load(),
		"fr_timeouts":              s.frTimeouts.Load(),
		"fr_inv_timeouts":          s.frInvTimeouts.Load(),
		"cancels_sent":             s.cancelsSent.Load(),
		"cancels_received":         s.cancelsReceived.Load(),
		"local_requests":           s.localRequests.Load(),
		"replicated_requests":      s.replicated.Load(),
		"rejected_requests":        s.rejected.Load(),
		"overloaded_requests":      s.overloaded.Load(),
		"shed_requests":            s.shed.Load(),
		"stateless_forwarded":      s.statelessFwd.Load(),
		"send_failures":            s.sendFailures.Load(),
		"retransmissions_sent":     s.retransSent.Load(),
		"retransmissions_absorbed": s.retransAbsorbed.Load(),
		"retransmission_rpl_T2":    s.retransRpl.Load(),
		"relayed_replies":          0,
		"local_replies":            0,
	}
	for i, n := range retransIntervals {
		m["retransmission_req_"+n] = s.retransReq[i].Load()
	}
	for c := 1; c <= 6; c++ {
		r, l := s.relayedReplies[c].Load(), s.localReplies[c].Load()
		m["relayed_replies"] += r
		m["local_replies"] += l
		m[itoa(c)+"xx_transactions"] = s.finalClass[c].Load()
	}
	return m
}

var (
	descReceived  = prometheus.NewDesc("imsdlg_tm_received_replies_total", "Replies received on branches.", nil, nil)
	descRelayed   = prometheus.NewDesc("imsdlg_tm_relayed_replies_total", "Replies relayed upstream, by class.", []string{"class"}, nil)
	descLocal     = prometheus.NewDesc("imsdlg_tm_local_replies_total", "Replies generated by the proxy, by class.", []string{"class"}, nil)
	descUAS       = prometheus.NewDesc("imsdlg_tm_uas_transactions_total", "Server transactions created (requests handled statefully).", nil, nil)
	descUAC       = prometheus.NewDesc("imsdlg_tm_uac_transactions_total", "Client transactions created (branches and local requests).", nil, nil)
	descFinal     = prometheus.NewDesc("imsdlg_tm_transactions_total", "Server transactions by the class of their final reply.", []string{"class"}, nil)
	descInuse     = prometheus.NewDesc("imsdlg_tm_inuse_transactions", "Server transactions currently in progress.", nil, nil)
	descLinger    = prometheus.NewDesc("imsdlg_tm_lingering_transactions", "Completed transactions kept only to absorb retransmissions (wt_timer, T4).", nil, nil)
	descBranches  = prometheus.NewDesc("imsdlg_tm_branches_total", "Branches created by forking.", nil, nil)
	descTimeouts  = prometheus.NewDesc("imsdlg_tm_timeouts_total", "Branches that hit fr_timeout or fr_inv_timeout.", []string{"timer"}, nil)
	descCancels   = prometheus.NewDesc("imsdlg_tm_cancels_total", "CANCEL requests, by direction.", []string{"direction"}, nil)
	descLocalReq  = prometheus.NewDesc("imsdlg_tm_local_requests_total", "Requests originated by the proxy (t_uac_dlg).", nil, nil)
	descReplic    = prometheus.NewDesc("imsdlg_tm_replicated_requests_total", "Copies of received requests sent elsewhere (t_replicate).", nil, nil)
	descRejected  = prometheus.NewDesc("imsdlg_tm_rejected_requests_total", "Requests refused by validation (400, 416, 420, 482, 483, 513).", nil, nil)
	descOverload  = prometheus.NewDesc("imsdlg_tm_overloaded_requests_total", "New requests answered 503 because tm.max_transactions were in progress.", nil, nil)
	descShed      = prometheus.NewDesc("imsdlg_tm_shed_requests_total", "New requests answered 503 because they came off a congested UDP socket (tm.shed_congested).", nil, nil)
	descStateless = prometheus.NewDesc("imsdlg_tm_stateless_forwarded_total", "Messages forwarded statelessly (ACK for 2xx, stray responses, 2xx after the server transaction ended).", nil, nil)
	descSendFail  = prometheus.NewDesc("imsdlg_tm_send_failures_total", "Branches or messages that could not be sent.", nil, nil)
	descRetrans   = prometheus.NewDesc("imsdlg_tm_retransmissions_total", "Retransmissions, sent by our timers or received and absorbed by a transaction.", []string{"direction"}, nil)
	descRetransQ  = prometheus.NewDesc("imsdlg_tm_request_retransmissions_total", "Requests we retransmitted, by their place in the series (the tm manual's retransmission_req_T1_1, _T1_2, _T1_3, _T2).", []string{"interval"}, nil)
	descRetransP  = prometheus.NewDesc("imsdlg_tm_reply_retransmissions_total", "Replies we sent again (the tm manual's retransmission_rpl_T2).", nil, nil)
	descRequests  = prometheus.NewDesc("imsdlg_tm_received_requests_total", "Requests received, by method (retransmissions included; methods without a name of their own are \"other\").", []string{"method"}, nil)
	descReplies   = prometheus.NewDesc("imsdlg_tm_sent_replies_total", "Replies sent upstream, relayed or generated, by status code (codes never sent are left out).", []string{"code"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceived, descRelayed, descLocal, descUAS, descUAC, descFinal,
		descInuse, descLinger, descBranches, descTimeouts, descCancels, descLocalReq, descReplic, descRejected, descOverload, descShed, descStateless, descSendFail, descRetrans, descRetransQ, descRetransP,
		descRequests, descReplies} {
		ch <- d
	}
	s.relayLatency.Describe(ch)
	s.setupRinging.Describe(ch)
	s.setupAnswer.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descReceived, s.receivedReplies.Load())
	for c := 1; c <= 6; c++ {
		l := itoa(c) + "xx"
		counter(descRelayed, s.relayedReplies[c].Load(), l)
		counter(descLocal, s.localReplies[c].Load(), l)
		counter(descFinal, s.finalClass[c].Load(), l)
	}
	counter(descUAS, s.uasTransactions.Load())
	counter(descUAC, s.uacTransactions.Load())
	ch <- prometheus.MustNewConstMetric(descInuse, prometheus.GaugeValue, float64(s.inuse.Load()))
	ch <- prometheus.MustNewConstMetric(descLinger, prometheus.GaugeValue, float64(s.lingering.Load()))
	counter(descBranches, s.branches.Load())
	counter(descTimeouts, s.frTimeouts.Load(), "fr_timeout")
	counter(descTimeouts, s.frInvTimeouts.Load(), "fr_inv_timeout")
	counter(descCancels, s.cancelsSent.Load(), "sent")
	counter(descCancels, s.cancelsReceived.Load(), "received")
	counter(descLocalReq, s.localRequests.Load())
	counter(descReplic, s.replicated.Load())
	counter(descRejected, s.rejected.Load())
	counter(descOverload, s.overloaded.Load())
	counter(descShed, s.shed.Load())
	counter(descStateless, s.statelessFwd.Load())
	counter(descSendFail, s.sendFailures.Load())
	counter(descRetrans, s.retransSent.Load(), "sent")
	counter(descRetrans, s.retransAbsorbed.Load(), "absorbed")
	for i, n := range retransIntervals {
		counter(descRetransQ, s.retransReq[i].Load(), n)
	}
	counter(descRetransP, s.retransRpl.Load())
	for i, n := range methodNames {
		counter(descRequests, s.requests[i].Load(), n)
	}
	for code := range s.replies {
		if v := s.replies[code].Load(); v > 0 {
			counter(descReplies, v, itoa(code))
		}
	}
	s.relayLatency.Collect(ch)
	s.setupRinging.Collect(ch)
	s.setupAnswer.Collect(ch)
}
