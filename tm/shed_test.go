package tm

import (
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm/transport"
)

// RFC 3261 §21.5.4 (tm.shed_congested): a proxy whose UDP socket holds
// more than half its buffer when it reads a full batch answers the new
// requests of that batch 503 with Retry-After, instead of taking in work it
// is not keeping up with. The proxy's reader is stalled on a first INVITE
// while the caller sends many more; once it goes on, some come off a
// congested socket and are shed, the rest are served, and with the option
// off none is shed.
func TestRFC3261_21_5_4_ShedOffACongestedSocket(t *testing.T) {
	for _, shed := range []bool{true, false} {
		t.Run(fmt.Sprintf("shed_congested=%v", shed), func(t *testing.T) {
			release := make(chan struct{})
			stalled := make(chan struct{}, 1)
			first := true
			router := RouterFunc(func(r *Request) Decision {
				if first {
					first = false
					stalled <- struct{}{}
					<-release
				}
				return Reply(480, "Temporarily Unavailable")
			})
			cfg := testCfg()
			cfg.ShedCongested = shed
			p := startProxy(t, cfg, router, func(o *Options) {
				o.Transport = transport.Options{UDPReaders: 1, UDPBatch: 4, UDPReadBuffer: 32 << 10}
			})
			uac := siptest.NewUA(t)
			uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
			select {
			case <-stalled:
			case <-time.After(siptest.WaitFor):
				t.Fatal("the first INVITE did not reach the router")
			}
			const n = 150
			for range n {
				uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
			}
			close(release)
			got := map[int]int{}
			retryAfter := 0
			for range 40 {
				res := uac.Next("a final response", func(m sip.Message) bool {
					r, ok := m.(*sip.Response)
					return ok && r.StatusCode >= 300
				}).(*sip.Response)
				got[res.StatusCode]++
				if res.StatusCode == 503 && res.GetHeader("Retry-After") != nil {
					retryAfter++
				}
			}
			require.Positive(t, got[480], "some were served: %v", got)
			snap := p.Stats().Snapshot()
			if shed {
				assert.Positive(t, got[503], "some were shed: %v", got)
				assert.Equal(t, got[503], retryAfter, "every 503 says when to retry")
				assert.Positive(t, snap["shed_requests"])
			} else {
				assert.Zero(t, got[503], "none shed: %v", got)
				assert.Zero(t, snap["shed_requests"])
			}
		})
	}
}
