package location

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNew_Defaults(t *testing.T) {
	tests := []struct {
		name        string
		opts        Options
		expires     string
		wantCode    int
		wantGranted time.Duration
	}{
		{"default lifetime", Options{}, "", 200, 3600 * time.Second},
		{"default MaxExpires clamps", Options{}, "Expires: 7200", 200, 3600 * time.Second},
		{"default MinExpires rejects", Options{}, "Expires: 59", 423, 0},
		{"DefaultExpires below MinExpires is raised", Options{MinExpires: 300 * time.Second, DefaultExpires: 10 * time.Second}, "", 200, 300 * time.Second},
		{"DefaultExpires above MaxExpires is lowered", Options{MaxExpires: 600 * time.Second}, "", 200, 600 * time.Second},
		{"MaxExpires below MinExpires is raised", Options{MinExpires: 900 * time.Second, MaxExpires: 600 * time.Second}, "Expires: 3600", 200, 900 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(tc.opts)
			lines := []string{"Contact: <sip:alice@192.0.2.10>"}
			if tc.expires != "" {
				lines = append(lines, tc.expires)
			}
			res := s.Register(reg(t, "c1", 1, lines...))
			require.Equal(t, tc.wantCode, res.StatusCode, "reason: %s", res.Reason)
			if tc.wantCode != 200 {
				return
			}
			got := s.Lookup(aliceAOR)
			require.Len(t, got, 1)
			assert.Equal(t, t0.Add(tc.wantGranted), got[0].Expires)
		})
	}

	s := New(Options{})
	mustOK(t, s.Register(reg(t, "c1", 1, "Contact: <sip:alice@192.0.2.10>")))
	assert.Len(t, s.Lookup(aliceAOR), 1, "nil Now defaults to the wall clock")
}

func TestRFC3261_10_2_1_2_LookupOrderedByQ(t *testing.T) {
	s, _ := newTestStore(Options{})
	require.NoError(t, s.AddStatic(aliceAOR, []string{"sip:alice@10.0.0.1;q=0.5"}))
	mustOK(t, s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@192.0.2.1>;q=0.1",
		"Contact: <sip:alice@192.0.2.2>;q=0.9",
		"Contact: <sip:alice@192.0.2.3>",
		"Contact: <sip:alice@192.0.2.4>;q=0.9",
	)))
	mustOK(t, s.Register(reg(t, "c2", 1, "Contact: <sip:alice@192.0.2.5>;q=0.5")))

	want := []string{
		"sip:alice@192.0.2.3",
		"sip:alice@192.0.2.2", // equal q: registration order
		"sip:alice@192.0.2.4",
		"sip:alice@10.0.0.1", // static registered before .5
		"sip:alice@192.0.2.5",
		"sip:alice@192.0.2.1",
	}
	assert.Equal(t, want, contactURIs(s.Lookup(aliceAOR)))

	// Refreshing keeps the original registration position.
	mustOK(t, s.Register(reg(t, "c1", 2, "Contact: <sip:alice@192.0.2.2>;q=0.9")))
	assert.Equal(t, want, contactURIs(s.Lookup(aliceAOR)))

	// Changing q moves the binding; among equal q it keeps its original,
	// earlier, registration position.
	mustOK(t, s.Register(reg(t, "c1", 3, "Contact: <sip:alice@192.0.2.1>;q=1")))
	assert.Equal(t, []string{"sip:alice@192.0.2.1", "sip:alice@192.0.2.3"}, contactURIs(s.Lookup(aliceAOR))[:2])
}

// A stable sort only shows on slices longer than the insertion-sort cutoff
// of the standard library's pdqsort, so this uses many bindings.
func TestRFC3261_10_2_1_2_LookupStableForManyBindings(t *testing.T) {
	s, _ := newTestStore(Options{MaxContacts: 100})
	qs := []string{"0.1", "0.5", "0.9"}
	var want [3][]string // by q, descending
	for i := range 60 {
		q := qs[i*7%3]
		uri := fmt.Sprintf("sip:alice@192.0.2.%d", i+1)
		mustOK(t, s.Register(reg(t, "c1", i+1, "Contact: <"+uri+">;q="+q)))
		switch q {
		case "0.9":
			want[0] = append(want[0], uri)
		case "0.5":
			want[1] = append(want[1], uri)
		default:
			want[2] = append(want[2], uri)
		}
	}
	all := append(append(want[0], want[1]...), want[2]...)
	assert.Equal(t, all, contactURIs(s.Lookup(aliceAOR)))
}

func TestRFC3261_10_2_1_ExpiryWithClock(t *testing.T) {
	s, clk := newTestStore(Options{})
	require.NoError(t, s.AddStatic("sip:bob@ims.example.com", []string{"sip:bob@10.0.0.2"}))
	mustOK(t, s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@192.0.2.1>;expires=60",
		"Contact: <sip:alice@192.0.2.2>;expires=3600")))

	steps := []struct {
		advance     time.Duration
		wantAlice   []string
		wantLen     int
		wantExpired int
	}{
		{0, []string{"sip:alice@192.0.2.1", "sip:alice@192.0.2.2"}, 2, 0},
		{59 * time.Second, []string{"sip:alice@192.0.2.1", "sip:alice@192.0.2.2"}, 2, 0},
		{time.Second, []string{"sip:alice@192.0.2.2"}, 2, 1}, // expires exactly at t0+60s
		{0, []string{"sip:alice@192.0.2.2"}, 2, 0},
		{3540 * time.Second, []string{}, 1, 1},
		{100 * 24 * time.Hour, []string{}, 1, 0}, // static bindings never expire
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		assert.Equal(t, st.wantAlice, contactURIs(s.Lookup(aliceAOR)), "step %d: Lookup hides expired bindings before Expire runs", i)
		assert.Equal(t, st.wantLen, s.Len(), "step %d: Len", i)
		assert.Equal(t, st.wantExpired, s.Expire(), "step %d: Expire", i)
		assert.Equal(t, st.wantLen, s.Len(), "step %d: Len after Expire", i)
	}
	assert.Equal(t, []string{"sip:bob@10.0.0.2"}, contactURIs(s.Bindings()))
}

func TestRFC3261_10_3_Step7_ExpiredBindingIsNew(t *testing.T) {
	s, clk := newTestStore(Options{MaxContacts: 1})
	mustOK(t, s.Register(reg(t, "c1", 5, "Contact: <sip:alice@192.0.2.1>;expires=60")))
	clk.Advance(61 * time.Second)

	// An expired binding no longer exists (§10.2.1): its CSeq cannot make a
	// restarted UE "out of order" ...
	mustOK(t, s.Register(reg(t, "c1", 1, "Contact: <sip:alice@192.0.2.1>;expires=60")))
	clk.Advance(61 * time.Second)

	// ... and it does not hold a MaxContacts slot.
	mustOK(t, s.Register(reg(t, "c2", 1, "Contact: <sip:alice@192.0.2.2>;expires=60")))
	assert.Equal(t, []string{"sip:alice@192.0.2.2"}, contactURIs(s.Lookup(aliceAOR)))
}

func TestAddStatic(t *testing.T) {
	s, _ := newTestStore(Options{})
	require.NoError(t, s.AddStatic("sip:Bob@IMS.example.com:5060", []string{
		"sip:bob@10.0.0.1",
		" <sip:bob@10.0.0.2;transport=tcp>;q=0.5 ",
		"sips:bob@gw.example.com:5071;q=0.25",
	}))

	got := s.Lookup("sip:Bob@ims.example.com")
	require.Len(t, got, 3)
	assert.Equal(t, []string{"sip:bob@10.0.0.1", "sip:bob@10.0.0.2;transport=tcp", "sips:bob@gw.example.com:5071"}, contactURIs(got))
	assert.Equal(t, []float64{1, 0.5, 0.25}, []float64{got[0].Q, got[1].Q, got[2].Q})
	for _, b := range got {
		assert.True(t, b.Static)
		assert.True(t, b.Expires.IsZero())
		assert.Equal(t, "sip:Bob@ims.example.com", b.AOR)
	}

	// Re-adding updates q in place instead of duplicating.
	require.NoError(t, s.AddStatic("sip:Bob@ims.example.com", []string{"sip:bob@10.0.0.1;q=0.1"}))
	got = s.Lookup("sip:Bob@ims.example.com")
	require.Len(t, got, 3)
	assert.Equal(t, "sip:bob@10.0.0.1", got[2].Contact.String())
	assert.Equal(t, 0.1, got[2].Q)
}

func TestAddStatic_Errors(t *testing.T) {
	tests := []struct {
		name     string
		aor      string
		contacts []string
		want     string // must appear in the error
	}{
		{"unparsable AOR", "alice", []string{"sip:a@10.0.0.1"}, `"alice"`},
		{"wildcard AOR", "*", []string{"sip:a@10.0.0.1"}, `"*"`},
		{"contact without scheme", aliceAOR, []string{"sip:a@10.0.0.1", "a@10.0.0.1"}, `"a@10.0.0.1"`},
		{"contact with unclosed bracket", aliceAOR, []string{"<sip:a@10.0.0.1"}, `"<sip:a@10.0.0.1"`},
		{"tel contact", aliceAOR, []string{"tel:+15551234"}, `"tel:+15551234"`},
		{"wildcard contact", aliceAOR, []string{"*"}, `"*"`},
		{"bad q", aliceAOR, []string{"sip:a@10.0.0.1;q=high"}, `"sip:a@10.0.0.1;q=high"`},
		{"URI param outside brackets", aliceAOR, []string{"sip:a@10.0.0.1;transport=tcp"}, `"transport"`},
		{"expires is not for static", aliceAOR, []string{"<sip:a@10.0.0.1>;expires=60"}, `"expires"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			err := s.AddStatic(tc.aor, tc.contacts)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Zero(t, s.Len(), "nothing is added when any contact is bad")
		})
	}
}

func TestAddStatic_ReplacesDynamicAndResistsRegister(t *testing.T) {
	s, _ := newTestStore(Options{})
	mustOK(t, s.Register(reg(t, "c1", 1, "Contact: <sip:alice@10.0.0.1>")))
	require.NoError(t, s.AddStatic(aliceAOR, []string{"sip:alice@10.0.0.1"}))

	got := s.Lookup(aliceAOR)
	require.Len(t, got, 1)
	assert.True(t, got[0].Static)

	mustOK(t, s.Register(reg(t, "c1", 2, "Contact: <sip:alice@10.0.0.1>;expires=0")))
	mustOK(t, s.Register(reg(t, "c1", 3, "Contact: *", "Expires: 0")))
	got = s.Lookup(aliceAOR)
	require.Len(t, got, 1)
	assert.True(t, got[0].Static)
}

func TestLookup_ReturnsCopies(t *testing.T) {
	s, _ := newTestStore(Options{})
	mustOK(t, s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@192.0.2.1;transport=udp>",
		"Path: <sip:pcscf.example.com;lr>")))

	got := s.Lookup(aliceAOR)
	require.Len(t, got, 1)
	got[0].Contact.UriParams.Add("transport", "tcp")
	got[0].Path[0] = "<sip:evil.example.com;lr>"
	got[0].Q = 0

	again := s.Lookup(aliceAOR)
	assert.Equal(t, "sip:alice@192.0.2.1;transport=udp", again[0].Contact.String())
	assert.Equal(t, []string{"<sip:pcscf.example.com;lr>"}, again[0].Path)
	assert.Equal(t, 1.0, again[0].Q)
}

func TestLookup_Unknown(t *testing.T) {
	s, _ := newTestStore(Options{})
	assert.Nil(t, s.Lookup(aliceAOR))
	assert.Nil(t, s.LookupURI(sip.Uri{Wildcard: true, Host: "*"}))
	assert.Zero(t, s.Len())
	assert.Empty(t, s.Bindings())
}

func TestBindings_SnapshotOrder(t *testing.T) {
	s, _ := newTestStore(Options{})
	for _, user := range []string{"carol", "alice", "bob"} {
		req := register(t,
			"To: <sip:"+user+"@ims.example.com>",
			"Call-ID: c-"+user,
			"CSeq: 1 REGISTER",
			"Contact: <sip:"+user+"@192.0.2.1>;q=0.5, <sip:"+user+"@192.0.2.2>")
		mustOK(t, s.Register(req))
	}
	var aors []string
	for _, b := range s.Bindings() {
		aors = append(aors, b.AOR+" "+b.Contact.String())
	}
	assert.Equal(t, []string{
		"sip:alice@ims.example.com sip:alice@192.0.2.2",
		"sip:alice@ims.example.com sip:alice@192.0.2.1",
		"sip:bob@ims.example.com sip:bob@192.0.2.2",
		"sip:bob@ims.example.com sip:bob@192.0.2.1",
		"sip:carol@ims.example.com sip:carol@192.0.2.2",
		"sip:carol@ims.example.com sip:carol@192.0.2.1",
	}, aors)
	assert.Equal(t, 3, s.Len())
}

// TestConcurrentRegisterLookup is meant for -race: writers and readers of
// the same and of different shards interleave freely.
func TestConcurrentRegisterLookup(t *testing.T) {
	s, clk := newTestStore(Options{})
	const (
		writers = 8
		rounds  = 50
	)
	// Requests are built up front: require must not be used off the test
	// goroutine.
	type pair struct{ shared, own *sip.Request }
	work := make([][]pair, writers)
	for w := range writers {
		for i := range rounds {
			work[w] = append(work[w], pair{
				shared: reg(t, fmt.Sprintf("shared-%d", w), i+1,
					fmt.Sprintf("Contact: <sip:alice@192.0.2.%d>;q=0.%d", w+1, w+1)),
				own: register(t,
					"To: <sip:user"+strconv.Itoa(w*rounds+i)+"@ims.example.com>",
					"Call-ID: own", "CSeq: 1 REGISTER",
					"Contact: <sip:u@192.0.2.1>"),
			})
		}
	}

	var wg sync.WaitGroup
	errs := make(chan string, writers*rounds*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, p := range work[w] {
				if res := s.Register(p.shared); res.StatusCode != 200 {
					errs <- fmt.Sprintf("shared writer %d round %d: %d %s", w, i, res.StatusCode, res.Reason)
				}
				if res := s.Register(p.own); res.StatusCode != 200 {
					errs <- fmt.Sprintf("own writer %d round %d: %d %s", w, i, res.StatusCode, res.Reason)
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds * 4 {
				for _, b := range s.Lookup(aliceAOR) {
					// Mutating a result must not race with the store.
					b.Contact.UriParams.Add("x", "y")
				}
				_ = s.Bindings()
				_ = s.Len()
				_ = s.Expire()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range rounds {
			clk.Advance(time.Millisecond)
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	got := s.Lookup(aliceAOR)
	assert.Len(t, got, writers)
	for i := 1; i < len(got); i++ {
		assert.GreaterOrEqual(t, got[i-1].Q, got[i].Q)
	}
	assert.Equal(t, 1+writers*rounds, s.Len())
}

func BenchmarkLookup(b *testing.B) {
	// The wall clock, not fakeClock: the fake's mutex would be the very
	// global lock the sharding avoids.
	s := New(Options{})
	const users = 10000
	aors := make([]string, users)
	for i := range aors {
		req := register(b,
			fmt.Sprintf("To: <sip:user%d@ims.example.com>", i),
			"Call-ID: bench", "CSeq: 1 REGISTER",
			fmt.Sprintf("Contact: <sip:user%d@10.45.%d.%d:5060;transport=tcp>;q=0.5, <sip:user%d@192.0.2.1>", i, i/256%256, i%256, i))
		if res := s.Register(req); res.StatusCode != 200 {
			b.Fatalf("setup: %d %s", res.StatusCode, res.Reason)
		}
		aors[i] = fmt.Sprintf("sip:user%d@ims.example.com", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if len(s.Lookup(aors[i%users])) != 2 {
				b.Error("lookup lost a binding")
				return
			}
			i += 7919
		}
	})
}

// RFC 3261 §10.2.1 for EachLiveURI (the router's fork): the bindings
// Lookup returns, in registration order rather than by q (tm orders
// targets by q), expired ones skipped, with the stored count to size by.
func TestRFC3261_10_2_1_EachLiveURIVisitsTheLiveBindings(t *testing.T) {
	s, clk := newTestStore(Options{})
	mustOK(t, s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@192.0.2.1>;q=0.1;expires=60",
		"Contact: <sip:alice@192.0.2.2>;q=0.9;expires=3600")))
	var u sip.Uri
	require.NoError(t, sip.ParseUri("sip:alice@IMS.example.com;transport=udp", &u))
	visit := func(u sip.Uri) (got []string, of []int) {
		s.EachLiveURI(u, func(b *Binding, n int) {
			got = append(got, b.Contact.String())
			of = append(of, n)
		})
		return got, of
	}
	for _, st := range []struct {
		advance time.Duration
		want    []string
		of      []int
	}{
		{0, []string{"sip:alice@192.0.2.1", "sip:alice@192.0.2.2"}, []int{2, 2}},
		{60 * time.Second, []string{"sip:alice@192.0.2.2"}, []int{2}},
		{3540 * time.Second, nil, nil},
	} {
		clk.Advance(st.advance)
		got, of := visit(u)
		assert.Equal(t, st.want, got, "after %v", st.advance)
		assert.Equal(t, st.of, of, "after %v", st.advance)
		assert.ElementsMatch(t, contactURIs(s.Lookup(aliceAOR)), got, "what Lookup returns, after %v", st.advance)
	}
	got, _ := visit(sip.Uri{Scheme: "sip", User: "carol", Host: "ims.example.com"})
	assert.Empty(t, got, "an AOR without bindings")
	got, _ = visit(sip.Uri{Wildcard: true, Host: "*"})
	assert.Empty(t, got, "no AOR")
}
