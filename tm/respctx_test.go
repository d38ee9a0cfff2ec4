package tm

import (
	"slices"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

func testCfg() Config {
	c := DefaultConfig()
	c.FrTimeout = 3 * time.Second
	c.FrInvTimeout = 60 * time.Second
	c.ReuseMessageText = true
	return c
}

func resp(code int, hdrs ...sip.Header) *sip.Response {
	r := sip.NewResponse(code, "R"+itoa(code))
	for _, h := range hdrs {
		r.AppendHeader(h)
	}
	return r
}

func kinds(acts []action) []actionKind {
	out := make([]actionKind, len(acts))
	for i, a := range acts {
		out[i] = a.kind
	}
	return out
}

func find(acts []action, k actionKind) []action {
	var out []action
	for _, a := range acts {
		if a.kind == k {
			out = append(out, a)
		}
	}
	return out
}

func targets(n int) []Target {
	out := make([]Target, n)
	for i := range out {
		out[i] = Target{URI: sip.Uri{Scheme: "sip", User: "u" + itoa(i), Host: "127.0.0.1"}}
	}
	return out
}

func startCtx(t *testing.T, invite bool, n int) (*respCtx, []action) {
	t.Helper()
	c := newRespCtx(invite, testCfg(), false)
	acts := c.Step(t0, event{kind: evStart, targets: targets(n)}, nil)
	require.Len(t, find(acts, actSendBranch), n)
	require.Len(t, find(acts, actArmTimer), n)
	return c, acts
}

// finalOf returns the code sent upstream by an actReplyFinal, 0 if none.
func finalOf(acts []action) int {
	for _, a := range acts {
		if a.kind == actReplyFinal {
			if a.res != nil {
				return a.res.StatusCode
			}
			return a.code
		}
	}
	return 0
}

func TestRFC3261_16_7_Step6_BestResponseOrder(t *testing.T) {
	cases := []struct {
		name   string
		codes  []int // final per branch, in arrival order; 0 = timeout (408 local)
		cancel []bool
		want   int
	}{
		{"6xx beats everything", []int{486, 603, 302, 401}, nil, 603},
		{"3xx beats 4xx", []int{404, 302, 486}, nil, 302},
		{"401 beats other 4xx", []int{404, 401, 486}, nil, 401},
		{"407 beats other 4xx", []int{403, 407}, nil, 407},
		{"lowest other 4xx wins", []int{486, 404, 480}, nil, 404},
		{"4xx beats 5xx", []int{500, 486}, nil, 486},
		{"5xx beats 408 and 503", []int{503, 502, 0}, nil, 502},
		{"408 from timeout vs 503: 408 (503 sorts above)", []int{503, 0}, nil, 408},
		{"503 alone becomes 500", []int{503}, nil, 500},
		{"487 after our CANCEL is last", []int{487, 0}, []bool{true, false}, 408},
		{"487 not caused by us is a plain 4xx", []int{487, 500}, nil, 487},
		{"single 480", []int{480}, nil, 480},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCfg()
			cfg.Disable6xxBlock = true // let every branch answer
			c := newRespCtx(true, cfg, false)
			c.Step(t0, event{kind: evStart, targets: targets(len(tc.codes))}, nil)
			var acts []action
			for i, code := range tc.codes {
				if tc.cancel != nil && tc.cancel[i] {
					c.Step(t0, event{kind: evReply, branch: i, res: resp(180)}, nil)
					c.branches[i].cancelSent = true
				}
				if code == 0 {
					acts = append(acts, c.Step(t0, event{kind: evTimer, branch: i, gen: c.branches[i].gen}, nil)...)
					continue
				}
				acts = append(acts, c.Step(t0, event{kind: evReply, branch: i, res: resp(code)}, nil)...)
			}
			assert.Equal(t, tc.want, finalOf(acts))
			assert.Len(t, find(acts, actReplyFinal), 1, "exactly one final reply")
			assert.Len(t, find(acts, actFinal), 1)
		})
	}
}

func TestRFC3261_16_7_Step7_AggregateChallenges(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	c.Step(t0, event{kind: evStart, targets: targets(3)}, nil)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(401, sip.NewHeader("WWW-Authenticate", `Digest realm="a"`))}, nil)
	c.Step(t0, event{kind: evReply, branch: 1, res: resp(407, sip.NewHeader("Proxy-Authenticate", `Digest realm="b"`))}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 2, res: resp(404)}, nil)
	finals := find(acts, actReplyFinal)
	require.Len(t, finals, 1)
	assert.Equal(t, 401, finals[0].res.StatusCode)
	require.Len(t, finals[0].auth, 1)
	assert.Equal(t, `Digest realm="b"`, finals[0].auth[0].Value())
}

func TestRFC3261_16_7_Step5_ProvisionalRelayedExcept100(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(100)}, nil)
	assert.Empty(t, find(acts, actRelay), "100 is hop-by-hop")
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(183)}, nil)
	assert.Len(t, find(acts, actRelay), 1, "each branch's 1xx goes up")
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(183), noRelay: true}, nil)
	assert.Empty(t, find(acts, actRelay), "reply hook may keep a provisional")
}

func TestRFC3261_16_7_Step5_Every2xxRelayedAndOthersCancelled(t *testing.T) {
	c, _ := startCtx(t, true, 3)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 1, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	assert.Len(t, find(acts, actFinal), 1)
	cancels := find(acts, actCancelBranch)
	require.Len(t, cancels, 1, "only the branch with a provisional can be cancelled now (§9.1)")
	assert.Equal(t, 0, cancels[0].branch)
	assert.Equal(t, reasonCompletedElsewhere, cancels[0].reason)
	assert.True(t, c.branches[2].cancelWant)

	// Branch 2 rings late: it gets its CANCEL now and its 180 stays here.
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(180)}, nil)
	require.Len(t, find(acts, actCancelBranch), 1)
	assert.Equal(t, reasonCompletedElsewhere, find(acts, actCancelBranch)[0].reason)
	assert.Empty(t, find(acts, actRelay))

	// A second 2xx from the cancelled branch crossing our CANCEL: relayed too.
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	assert.Empty(t, find(acts, actFinal), "the outcome was already decided")

	c.Step(t0, event{kind: evReply, branch: 2, res: resp(487)}, nil)
	assert.True(t, c.done)
}

func TestTM_FrTimeout_NoProvisional(t *testing.T) {
	c, acts := startCtx(t, true, 1)
	arm := find(acts, actArmTimer)[0]
	assert.Equal(t, 3*time.Second, arm.after)
	acts = c.Step(t0, event{kind: evTimer, branch: 0, gen: arm.gen}, nil)
	assert.Empty(t, find(acts, actCancelBranch), "no CANCEL before a provisional (§9.1)")
	assert.Equal(t, 408, finalOf(acts))
	require.Len(t, find(acts, actTimedOut), 1)
	assert.False(t, find(acts, actTimedOut)[0].local, "fr_timeout, not fr_inv_timeout")
	// A late 180 gets the CANCEL we owe, with Reason 480.
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	require.Len(t, find(acts, actCancelBranch), 1)
	assert.Equal(t, reasonRequestTimeout, find(acts, actCancelBranch)[0].reason)
	assert.Empty(t, find(acts, actRelay))
}

func TestTM_FrInvTimeout_CancelsWithReason480(t *testing.T) {
	c, _ := startCtx(t, true, 1)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	arm := find(acts, actArmTimer)
	require.Len(t, arm, 1)
	assert.Equal(t, 60*time.Second, arm[0].after, "fr_inv_timeout after the first provisional")
	// The old fr_timeout timer is stale now.
	assert.Empty(t, c.Step(t0, event{kind: evTimer, branch: 0, gen: 1}, nil))
	acts = c.Step(t0, event{kind: evTimer, branch: 0, gen: arm[0].gen}, nil)
	require.Len(t, find(acts, actCancelBranch), 1)
	assert.Equal(t, reasonRequestTimeout, find(acts, actCancelBranch)[0].reason)
	assert.True(t, find(acts, actTimedOut)[0].local)
	assert.Equal(t, 408, finalOf(acts))
	// The 487 answering our CANCEL changes nothing.
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(487)}, nil)
	assert.Empty(t, find(acts, actReplyFinal))
}

func TestTM_RestartFrOnEachReply(t *testing.T) {
	for _, restart := range []bool{true, false} {
		cfg := testCfg()
		cfg.RestartFrOnEachReply = restart
		c := newRespCtx(true, cfg, false)
		c.Step(t0, event{kind: evStart, targets: targets(1)}, nil)
		c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
		acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(183)}, nil)
		if restart {
			assert.Len(t, find(acts, actArmTimer), 1, "restart_fr_on_each_reply=1")
		} else {
			assert.Empty(t, find(acts, actArmTimer), "restart_fr_on_each_reply=0")
		}
	}
}

func TestRFC3261_16_10_UpstreamCancel(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	acts := c.Step(t0, event{kind: evUpstreamCancel, reason: "SIP;cause=487"}, nil)
	cancels := find(acts, actCancelBranch)
	require.Len(t, cancels, 1)
	assert.Equal(t, 0, cancels[0].branch)
	assert.Equal(t, "SIP;cause=487", cancels[0].reason, "the caller's Reason is passed on")
	assert.Equal(t, 0, finalOf(acts), "§16.10: the final reply comes from the branches")
	assert.Empty(t, find(acts, actFinal))

	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(183)}, nil)
	assert.Len(t, find(acts, actCancelBranch), 1, "cancelled once its 1xx came")
	assert.Empty(t, find(acts, actRelay), "nothing but 2xx goes up after the CANCEL")

	// A 2xx crossing the CANCEL still goes up, and answers the INVITE
	// (RFC 5407 §3.1.2).
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	require.Len(t, find(acts, actFinal), 1)
	assert.Equal(t, Answered, find(acts, actFinal)[0].outcome)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(487)}, nil)
	assert.Equal(t, []actionKind{actStopTimer, actDone}, kinds(acts))
}

// §16.10: without a crossing 2xx the best of the branches' replies (their
// 487s) goes up as the final reply, with the outcome Cancelled; when no
// branch answers the CANCEL in time (their transactions time out) the 487
// is ours.
func TestRFC3261_16_10_CancelledFinalFromTheBranches(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
	c.Step(t0, event{kind: evUpstreamCancel}, nil)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(487)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 1, res: resp(487)}, nil)
	assert.Equal(t, 487, finalOf(acts))
	require.Len(t, find(acts, actFinal), 1)
	f := find(acts, actFinal)[0]
	assert.Equal(t, Cancelled, f.outcome)
	assert.NotNil(t, f.res, "relayed, not made")

	c, _ = startCtx(t, true, 1)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	c.Step(t0, event{kind: evUpstreamCancel}, nil)
	acts = c.Step(t0, event{kind: evBranchFailed, branch: 0, code: 408}, nil)
	assert.Equal(t, 487, finalOf(acts), "no branch answered the CANCEL")
	assert.True(t, find(acts, actFinal)[0].local)

	// A CANCEL before any branch started (the router deferred): 487 at once.
	c = newRespCtx(true, testCfg(), false)
	acts = c.Step(t0, event{kind: evUpstreamCancel}, nil)
	assert.Equal(t, 487, finalOf(acts))
	assert.Empty(t, c.Step(t0, event{kind: evStart, targets: targets(1)}, nil)[0:0])
}

func TestRFC3261_16_6_SerialForkingByQ(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	tg := []Target{{Q: 0.5, Dst: "c"}, {Q: 1, Dst: "a"}, {Q: 1, Dst: "b"}}
	acts := c.Step(t0, event{kind: evStart, targets: tg}, nil)
	require.Len(t, find(acts, actSendBranch), 2, "the q=1 targets first, in parallel")
	assert.Equal(t, "a", c.branches[0].target.Dst)
	assert.Equal(t, "b", c.branches[1].target.Dst)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(486)}, nil)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(404)}, nil)
	require.Len(t, find(acts, actSendBranch), 1, "next q step")
	assert.Equal(t, "c", c.branches[2].target.Dst)
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(480)}, nil)
	assert.Equal(t, 404, finalOf(acts))
}

func TestTM_Disable6xxBlock(t *testing.T) {
	for _, disable := range []bool{false, true} {
		cfg := testCfg()
		cfg.Disable6xxBlock = disable
		c := newRespCtx(true, cfg, false)
		c.Step(t0, event{kind: evStart, targets: []Target{{Q: 1}, {Q: 1}, {Q: 0.5}}}, nil)
		c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
		acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(603)}, nil)
		if !disable {
			assert.Len(t, find(acts, actCancelBranch), 1, "a 6xx cancels the other branches")
			acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(487)}, nil)
			assert.Empty(t, find(acts, actSendBranch), "and blocks the next serial step")
			assert.Equal(t, 603, finalOf(acts))
		} else {
			assert.Empty(t, find(acts, actCancelBranch))
			acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(486)}, nil)
			assert.Len(t, find(acts, actSendBranch), 1, "serial forking goes on")
		}
	}
}

func TestTM_FailureRoute(t *testing.T) {
	c := newRespCtx(true, testCfg(), true)
	c.Step(t0, event{kind: evStart, targets: targets(1)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(486)}, nil)
	run := find(acts, actRunFailure)
	require.Len(t, run, 1)
	assert.Equal(t, 486, run[0].res.StatusCode)
	assert.Zero(t, finalOf(acts))

	acts = c.Step(t0, event{kind: evFailureResult, targets: targets(1)}, nil)
	require.Len(t, find(acts, actSendBranch), 1, "failure route added a serial branch")
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(404)}, nil)
	require.Len(t, find(acts, actRunFailure), 1, "failure route runs again")
	acts = c.Step(t0, event{kind: evFailureResult}, nil)
	assert.Equal(t, 404, finalOf(acts))
}

func TestTM_MinorBranchNotWaitedFor(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	c.Step(t0, event{kind: evStart, targets: []Target{{}, {Minor: true}}}, nil)
	c.Step(t0, event{kind: evReply, branch: 1, res: resp(183)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(486)}, nil)
	assert.Equal(t, 486, finalOf(acts))
	require.Len(t, find(acts, actCancelBranch), 1)
	assert.Equal(t, 1, find(acts, actCancelBranch)[0].branch)
}

func TestTM_TReplyCancelsPendingBranches(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	acts := c.Step(t0, event{kind: evLocalReply, code: 487, reason: "Request Terminated", cancelReason: `SIP ;cause=487 ;text="terminated"`}, nil)
	assert.Equal(t, 487, finalOf(acts))
	cancels := find(acts, actCancelBranch)
	require.Len(t, cancels, 1)
	assert.Equal(t, `SIP ;cause=487 ;text="terminated"`, cancels[0].reason)
	assert.Nil(t, c.Step(t0, event{kind: evLocalReply, code: 500}, nil), "only one final reply")
}

func TestTM_InjectAndWaitForNewBranches(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	acts := c.Step(t0, event{kind: evStart, targets: targets(1), wait: true}, nil)
	require.Len(t, find(acts, actSendBranch), 1)
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(480)}, nil)
	assert.Zero(t, finalOf(acts), "t_wait_for_new_branches keeps the transaction open")
	acts = c.Step(t0, event{kind: evInject, targets: targets(1)}, nil)
	require.Len(t, find(acts, actSendBranch), 1)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(486)}, nil)
	assert.Zero(t, finalOf(acts))
	acts = c.Step(t0, event{kind: evNoMoreBranches}, nil)
	assert.Equal(t, 480, finalOf(acts))
}

func TestRFC3261_9_1_NonInviteHasNoCancel(t *testing.T) {
	c, _ := startCtx(t, false, 2)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	assert.Empty(t, find(acts, actCancelBranch))
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(200)}, nil)
	assert.Empty(t, find(acts, actRelay), "a non-INVITE has one final reply")
	assert.Len(t, find(acts, actDone), 1)
	// Non-INVITE timers stay at fr_timeout after a provisional.
	c2, _ := startCtx(t, false, 1)
	acts = c2.Step(t0, event{kind: evReply, branch: 0, res: resp(183)}, nil)
	assert.Empty(t, find(acts, actArmTimer))
}

func TestRFC3261_16_9_TransportErrorIs503(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	c.Step(t0, event{kind: evBranchFailed, branch: 0, code: 503}, nil)
	acts := c.Step(t0, event{kind: evBranchFailed, branch: 1, code: 0}, nil)
	assert.Equal(t, 500, finalOf(acts), "only a 503: answer 500 (§16.7 step 6)")
}

func TestTM_NoTargets(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	acts := c.Step(t0, event{kind: evStart}, nil)
	assert.Equal(t, 480, finalOf(acts))
	assert.Len(t, find(acts, actDone), 1)
}

func TestTM_DoneOnceAfterEveryBranch(t *testing.T) {
	c, _ := startCtx(t, true, 2)
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
	assert.Empty(t, find(acts, actDone), "branch 1 still pending")
	acts = c.Step(t0, event{kind: evTimer, branch: 1, gen: c.branches[1].gen}, nil)
	assert.Len(t, find(acts, actDone), 1)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
	assert.Len(t, find(acts, actCancelBranch), 1, "the owed CANCEL still goes out")
	assert.Empty(t, find(acts, actDone))
}

func TestTM_MaxBranches(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	acts := c.Step(t0, event{kind: evStart, targets: targets(maxBranches + 5)}, nil)
	assert.Len(t, find(acts, actSendBranch), maxBranches)
}

func TestTM_BranchTimesFollowEvents(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	c.Step(t0, event{kind: evStart, targets: targets(2)}, nil)
	c.Step(t0.Add(2*time.Second), event{kind: evReply, branch: 1, res: resp(486)}, nil)
	assert.Equal(t, t0, c.branches[0].started)
	assert.True(t, c.branches[0].ended.IsZero(), "still pending")
	assert.Equal(t, t0.Add(2*time.Second), c.branches[1].ended)
	c.Step(t0.Add(3*time.Second), event{kind: evTimer, branch: 0, gen: c.branches[0].gen}, nil)
	assert.Equal(t, t0.Add(3*time.Second), c.branches[0].ended)
}

func contact(uri string, q string) sip.Header {
	c := &sip.ContactHeader{Params: sip.NewParams()}
	if err := sip.ParseUri(uri, &c.Address); err != nil {
		panic(err)
	}
	if q != "" {
		c.Params.Add("q", q)
	}
	return c
}

// RFC 3261 §16.7 step 5 (issue 11 §12): with follow_redirects the proxy
// recurses on a 3xx, trying its Contacts as a new serial step (higher q
// first), at most follow_redirects times; a Contact already tried or not
// sip: is skipped, and with nothing left the 3xx goes upstream.
func TestRFC3261_16_7_FollowRedirects(t *testing.T) {
	cfg := testCfg()
	cfg.FollowRedirects = 2
	c := newRespCtx(true, cfg, false)
	c.Step(t0, event{kind: evStart, targets: targets(1)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(302,
		contact("sip:b@10.0.0.2", "0.5"), contact("sip:c@10.0.0.3", "0.9"), contact("tel:+15551234", ""))}, nil)
	require.Len(t, find(acts, actSendBranch), 1, "the best Contact first, a serial step of its own")
	assert.Equal(t, "sip:c@10.0.0.3", c.branches[1].target.URI.String())
	assert.Zero(t, finalOf(acts), "the 302 is not relayed")

	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(486)}, nil)
	require.Len(t, find(acts, actSendBranch), 1, "then the next q")
	assert.Equal(t, "sip:b@10.0.0.2", c.branches[2].target.URI.String())

	// A second redirect, pointing back at a tried target and a new one.
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(301, contact("sip:c@10.0.0.3", ""), contact("sip:d@10.0.0.4", ""))}, nil)
	require.Len(t, find(acts, actSendBranch), 1)
	assert.Equal(t, "sip:d@10.0.0.4", c.branches[3].target.URI.String(), "c was tried already")

	// The budget of 2 is spent: the 3xx not followed is relayed (the
	// followed ones only when nothing else came back).
	acts = c.Step(t0, event{kind: evReply, branch: 3, res: resp(302, contact("sip:e@10.0.0.5", ""))}, nil)
	assert.Empty(t, find(acts, actSendBranch))
	require.Len(t, find(acts, actReplyFinal), 1)
	assert.Equal(t, 3, find(acts, actReplyFinal)[0].branch)

	// Off by default: the 3xx goes upstream.
	c = newRespCtx(true, testCfg(), false)
	c.Step(t0, event{kind: evStart, targets: targets(1)}, nil)
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(302, contact("sip:b@10.0.0.2", ""))}, nil)
	assert.Equal(t, 302, finalOf(acts))
}

// OpenSIPS tm t_cancel_branch: "" cancels the current branch, "o" the
// others, "a" all; a CANCEL waits for a provisional (§9.1); the
// transaction goes on: a cancelled branch's 487 ranks below another
// branch's failure, and a 2xx crossing the CANCEL is relayed.
func TestSeedTM_CancelBranch(t *testing.T) {
	for _, tc := range []struct {
		name      string
		branch    int
		others    bool
		cancelled []int // CANCELs sent now (branches 0 and 1 rang, 2 did not)
		owed      []int // CANCELs owed until a provisional
	}{
		{"the current branch", 1, false, []int{1}, nil},
		{"a branch without a provisional: owed", 2, false, nil, []int{2}},
		{"the others", 1, true, []int{0}, []int{2}},
		{"all", -1, true, []int{0, 1}, []int{2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := startCtx(t, true, 3)
			c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
			c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
			acts := c.Step(t0, event{kind: evCancelBranch, branch: tc.branch, others: tc.others, reason: "SIP;cause=480"}, nil)
			var got []int
			for _, a := range find(acts, actCancelBranch) {
				got = append(got, a.branch)
				assert.Equal(t, "SIP;cause=480", a.reason)
			}
			assert.Equal(t, tc.cancelled, got)
			for i := range c.branches {
				assert.Equal(t, slices.Contains(tc.owed, i), c.branches[i].cancelWant, "branch %d owed a CANCEL", i)
			}
			assert.Empty(t, find(acts, actFinal), "the transaction goes on")
		})
	}
	t.Run("a cancelled branch's 487 loses to another's 486", func(t *testing.T) {
		c, _ := startCtx(t, true, 2)
		c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
		c.Step(t0, event{kind: evCancelBranch, branch: 0}, nil)
		c.Step(t0, event{kind: evReply, branch: 0, res: resp(487)}, nil)
		acts := c.Step(t0, event{kind: evReply, branch: 1, res: resp(486)}, nil)
		assert.Equal(t, 486, finalOf(acts))
	})
	t.Run("a 2xx crossing the CANCEL is relayed", func(t *testing.T) {
		c, _ := startCtx(t, true, 2)
		c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
		c.Step(t0, event{kind: evCancelBranch, branch: 0}, nil)
		acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
		assert.Len(t, find(acts, actRelay), 1)
		require.Len(t, find(acts, actFinal), 1, "the answer")
	})
	t.Run("nothing after the final reply", func(t *testing.T) {
		c, _ := startCtx(t, true, 2)
		c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
		c.Step(t0, event{kind: evReply, branch: 1, res: resp(200)}, nil)
		acts := c.Step(t0, event{kind: evCancelBranch, branch: 0}, nil)
		assert.Empty(t, find(acts, actCancelBranch), "already cancelled as completed elsewhere")
	})
}

// OpenSIPS tm manual 1.4.15 (t_wait_for_new_branches(branches)): the wait
// ends once that many branches were injected; the best reply then goes
// upstream when they are done, without NoMoreBranches.
func TestSeedTm_1_4_15_WaitForAMaximumOfNewBranches(t *testing.T) {
	c := newRespCtx(true, testCfg(), false)
	c.Step(t0, event{kind: evStart, targets: targets(1), wait: true, maxNew: 2}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 0, res: resp(480)}, nil)
	assert.Zero(t, finalOf(acts), "waiting for new branches")
	c.Step(t0, event{kind: evInject, targets: targets(1)}, nil)
	acts = c.Step(t0, event{kind: evReply, branch: 1, res: resp(486)}, nil)
	assert.Zero(t, finalOf(acts), "one of two injected: still waiting")
	acts = c.Step(t0, event{kind: evInject, targets: targets(1)}, nil)
	require.Len(t, find(acts, actSendBranch), 1)
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(404)}, nil)
	assert.NotZero(t, finalOf(acts), "the maximum came: the best reply goes up")
}

// RFC 3841 §9.1 (Request-Disposition: no-cancel, followed with t_relay's
// allow-no-cancel): the first 2xx goes up and cancels nothing; the other
// branches go on, a further 2xx is relayed too, their other finals stay
// here, and the transaction is done when the last branch is.
func TestRFC3841_9_1_NoCancelLeavesPendingBranches(t *testing.T) {
	c, _ := startCtx(t, true, 3)
	c.noCancel = true
	c.Step(t0, event{kind: evReply, branch: 0, res: resp(180)}, nil)
	c.Step(t0, event{kind: evReply, branch: 1, res: resp(180)}, nil)
	acts := c.Step(t0, event{kind: evReply, branch: 1, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1)
	assert.Len(t, find(acts, actFinal), 1)
	assert.Empty(t, find(acts, actCancelBranch), "no-cancel")
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(180)}, nil)
	assert.Empty(t, find(acts, actCancelBranch), "a branch that rings late is not cancelled either")
	assert.Empty(t, find(acts, actRelay), "its 180 stays here: the caller has its final")
	acts = c.Step(t0, event{kind: evReply, branch: 0, res: resp(200)}, nil)
	assert.Len(t, find(acts, actRelay), 1, "a further 2xx goes up")
	assert.False(t, c.done)
	acts = c.Step(t0, event{kind: evReply, branch: 2, res: resp(486)}, nil)
	assert.Empty(t, find(acts, actRelay))
	assert.True(t, c.done)
}

// Issue 14: the branches a step starts at once (a parallel fork, an
// injected set) take one allocation of the branch list, not one per
// branch: the list is grown once for them.
func TestIssue14_ForkGrowsTheBranchListOnce(t *testing.T) {
	start := func(n int) float64 {
		tgs := targets(n)
		out := make([]action, 0, 4*n)
		var c *respCtx
		allocs := testing.AllocsPerRun(5, func() {
			c = newRespCtx(true, testCfg(), false)
			c.Step(t0, event{kind: evStart, targets: tgs}, out[:0])
		})
		require.Len(t, c.branches, n)
		return allocs
	}
	one := start(1)
	for _, n := range []int{2, 3, 5} {
		assert.Equal(t, one, start(n), "%d branches cost what one does", n)
	}
}
