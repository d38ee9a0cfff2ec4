package e2e

import (
	"strings"
	"testing"
	"time"
)

// uac_recv_bye.xml (a caller whose call is ended by the other side) against
// its stand-in peer uas_send_bye.xml, sipp -> sipp with no proxy, and the
// caller's checks of the BYE shown to bite.

func TestScenarioPair_CallerReceivesBye(t *testing.T) {
	RequireTools(t)
	pairs := []sippPair{
		{name: "plain",
			uas: SippArgs{Scenario: "uas_send_bye.xml"},
			uac: SippArgs{Scenario: "uac_recv_bye.xml"}},
		{name: "reason_min_cseq",
			uas: SippArgs{Scenario: "uas_send_bye.xml", Pause: 200 * time.Millisecond, Extra: []string{"-base_cseq", "7"}},
			uac: SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1", "min_cseq": "7"}}},
	}
	for _, p := range pairs {
		for _, tr := range []string{"u1", "t1"} {
			t.Run(p.name+"/"+tr, func(t *testing.T) {
				t.Parallel()
				uas, uac := startPair(t, p, tr)
				if err := uac.Wait(); err != nil {
					t.Errorf("UAC: %v", err)
				}
				if err := uas.Wait(); err != nil {
					t.Errorf("UAS: %v", err)
				}
				if t.Failed() {
					return
				}
				for _, s := range []*Sipp{uac, uas} {
					st, err := s.Stats()
					if err != nil {
						t.Fatalf("%s: %v", s.Args.Scenario, err)
					}
					if st.Successful != 1 || st.Failed != 0 {
						t.Errorf("%s: %d successful, %d failed calls; want 1, 0", s.Args.Scenario, st.Successful, st.Failed)
					}
				}
			})
		}
	}

	// The checks bite: the UAC stops (exit 255) on the BYE, which then stays
	// unanswered, so the UAS is killed rather than left to its -timeout.
	failing := []struct {
		name, want string
		pair       sippPair
	}{
		{name: "require_reason_without_reason", want: "BYE without a Reason header",
			pair: sippPair{
				uas: SippArgs{Scenario: "uas_send_bye.xml", Vars: map[string]string{"no_reason": "1"}},
				uac: SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}}}},
		{name: "cseq_below_min_cseq", want: "BYE CSeq 3 lower than -set min_cseq 5",
			pair: sippPair{
				uas: SippArgs{Scenario: "uas_send_bye.xml", Extra: []string{"-base_cseq", "3"}},
				uac: SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"min_cseq": "5"}}}},
	}
	for _, f := range failing {
		t.Run(f.name+"/u1", func(t *testing.T) {
			t.Parallel()
			uas, uac := startPair(t, f.pair, "u1")
			errUAC := uac.Wait()
			if errUAC == nil || !strings.Contains(errUAC.Error(), f.want) {
				t.Errorf("UAC: got %v, want a failure containing %q", errUAC, f.want)
			}
			uas.Kill()
		})
	}
}
