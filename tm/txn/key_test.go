package txn

import (
	"bytes"
	"testing"
)

func invite() RequestFields {
	return RequestFields{
		Method:     "INVITE",
		Branch:     "z9hG4bK-16507-3227-0",
		SentByHost: "pc33.atlanta.example.com",
		SentByPort: 5060,
		RequestURI: "sip:bob@biloxi.example.com",
		FromTag:    "9fxced76sl",
		CallID:     "3848276298220188511@atlanta.example.com",
		CSeq:       1,
		TopVia:     "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK-16507-3227-0",
	}
}

func skey(r RequestFields) string      { return string(AppendServerKey(nil, &r)) }
func cancelKey(r RequestFields) string { return string(AppendCancelTargetKey(nil, &r)) }

func TestRFC3261_17_2_3_ServerKey(t *testing.T) {
	inv := invite()
	base := skey(inv)
	with := func(f func(*RequestFields)) RequestFields {
		r := invite()
		f(&r)
		return r
	}
	cases := []struct {
		name string
		r    RequestFields
		same bool
	}{
		{"retransmission", invite(), true},
		// Only branch, sent-by and method count with the magic cookie.
		{"other headers do not count", with(func(r *RequestFields) {
			r.RequestURI, r.FromTag, r.CallID, r.CSeq, r.TopVia, r.ToTag = "sip:x", "x", "x", 9, "x", "x"
		}), true},
		{"ACK of a non-2xx matches the INVITE", with(func(r *RequestFields) { r.Method = "ACK"; r.ToTag = "314159" }), true},
		{"branch and host are case-insensitive", with(func(r *RequestFields) {
			r.Branch = "Z9HG4BK-16507-3227-0"
			r.SentByHost = "PC33.Atlanta.example.com"
		}), true},
		{"CANCEL is a transaction of its own", with(func(r *RequestFields) { r.Method = "CANCEL" }), false},
		{"other branch", with(func(r *RequestFields) { r.Branch += "1" }), false},
		{"same branch from another sent-by host", with(func(r *RequestFields) { r.SentByHost = "evil.example.com" }), false},
		{"same branch from another port", with(func(r *RequestFields) { r.SentByPort = 5062 }), false},
		{"methods are case-sensitive", with(func(r *RequestFields) { r.Method = "invite" }), false},
	}
	for _, c := range cases {
		if got := skey(c.r) == base; got != c.same {
			t.Errorf("%s: same key = %v, want %v", c.name, got, c.same)
		}
	}
	// §9.2: a CANCEL finds the INVITE as if it were one.
	cancel := with(func(r *RequestFields) { r.Method = "CANCEL" })
	if cancelKey(cancel) != base {
		t.Error("the CANCEL's target key is not the INVITE's key")
	}
	// An ACK for a 2xx carries a new branch: it does not find the INVITE.
	if skey(with(func(r *RequestFields) { r.Method = "ACK"; r.Branch = "z9hG4bKnew" })) == base {
		t.Error("ACK with a new branch matched the INVITE")
	}
	// A non-INVITE key never equals an INVITE key.
	bye := with(func(r *RequestFields) { r.Method = "BYE" })
	if skey(bye) == base || skey(bye) != skey(bye) {
		t.Error("BYE keys")
	}
}

func TestRFC3261_17_2_3_RFC2543Fallback(t *testing.T) {
	old := func(f func(*RequestFields)) RequestFields {
		r := invite()
		r.Branch = ""
		if f != nil {
			f(&r)
		}
		return r
	}
	base := skey(old(nil))
	cases := []struct {
		name string
		r    RequestFields
		same bool
	}{
		{"retransmission", old(nil), true},
		{"a branch without the cookie is ignored", old(func(r *RequestFields) { r.Branch = "a1b2c3" }), true},
		// The ACK carries the response's To tag; the owner checks it
		// against the tag of the response the transaction sent.
		{"ACK with the response's To tag", old(func(r *RequestFields) { r.Method = "ACK"; r.ToTag = "314159" }), true},
		{"sent-by is not part of it (the whole Via is)", old(func(r *RequestFields) { r.SentByHost = "x" }), true},
		{"tags are case-insensitive", old(func(r *RequestFields) { r.FromTag = "9FXCED76SL" }), true},
		{"Request-URI", old(func(r *RequestFields) { r.RequestURI = "sip:carol@chicago.example.com" }), false},
		{"From tag", old(func(r *RequestFields) { r.FromTag = "other" }), false},
		{"Call-ID", old(func(r *RequestFields) { r.CallID = "other" }), false},
		{"Call-ID is case-sensitive", old(func(r *RequestFields) { r.CallID = "3848276298220188511@ATLANTA.example.com" }), false},
		{"CSeq number", old(func(r *RequestFields) { r.CSeq = 2 }), false},
		{"top Via", old(func(r *RequestFields) { r.TopVia += ";received=10.0.0.1" }), false},
		{"CANCEL", old(func(r *RequestFields) { r.Method = "CANCEL" }), false},
		{"a cookie branch uses the other rule", old(func(r *RequestFields) { r.Branch = "z9hG4bKx" }), false},
	}
	for _, c := range cases {
		if got := skey(c.r) == base; got != c.same {
			t.Errorf("%s: same key = %v, want %v", c.name, got, c.same)
		}
	}
	if cancelKey(old(func(r *RequestFields) { r.Method = "CANCEL" })) != base {
		t.Error("RFC 2543 CANCEL does not find its INVITE")
	}

	// Non-INVITE requests match on the To tag and the CSeq method too.
	bye := func(f func(*RequestFields)) RequestFields {
		return old(func(r *RequestFields) {
			r.Method = "BYE"
			r.ToTag = "314159"
			if f != nil {
				f(r)
			}
		})
	}
	byeKey := skey(bye(nil))
	if skey(bye(nil)) != byeKey {
		t.Error("BYE retransmission")
	}
	if skey(bye(func(r *RequestFields) { r.ToTag = "271828" })) == byeKey {
		t.Error("To tag ignored for a non-INVITE")
	}
	if skey(bye(func(r *RequestFields) { r.Method = "INFO" })) == byeKey {
		t.Error("method ignored for a non-INVITE")
	}
}

func TestRFC3261_17_1_3_ClientKey(t *testing.T) {
	k := string(AppendClientKey(nil, "z9hG4bK74bf9", "INVITE"))
	if string(AppendClientKey(nil, "z9hG4bK74BF9", "INVITE")) != k {
		t.Error("branch compared case-sensitively")
	}
	// A CANCEL and its INVITE share the branch; the CSeq method tells the
	// 200 of the CANCEL from the responses of the INVITE.
	if string(AppendClientKey(nil, "z9hG4bK74bf9", "CANCEL")) == k {
		t.Error("CANCEL response matched the INVITE")
	}
	if string(AppendClientKey(nil, "z9hG4bK74bf8", "INVITE")) == k {
		t.Error("other branch matched")
	}
	// Client and server keys live in different spaces.
	r := invite()
	r.Branch = "z9hG4bK74bf9"
	if skey(r) == k {
		t.Error("server key equals client key")
	}
}

func TestKeysAreUnambiguous(t *testing.T) {
	// Length-prefixed fields: moving bytes between fields changes the key.
	a := string(AppendClientKey(nil, "z9hG4bKab", "cINVITE"))
	b := string(AppendClientKey(nil, "z9hG4bKabc", "INVITE"))
	if a == b {
		t.Error("client fields run into each other")
	}
	r1, r2 := invite(), invite()
	r1.Branch, r2.Branch = "", ""
	r1.RequestURI, r1.FromTag = "sip:a", "bc"
	r2.RequestURI, r2.FromTag = "sip:ab", "c"
	if skey(r1) == skey(r2) {
		t.Error("RFC 2543 fields run into each other")
	}
	// An INVITE key (no To tag) and a non-INVITE key never collide even
	// when the missing field would line up.
	inv, other := invite(), invite()
	inv.Branch, other.Branch = "", ""
	other.Method, other.ToTag = "INVITE2", ""
	if skey(inv) == skey(other) {
		t.Error("INVITE and non-INVITE 2543 keys collide")
	}
}

func TestKeysAppendWithoutAllocating(t *testing.T) {
	r := invite()
	old := invite()
	old.Branch = ""
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendServerKey(buf[:0], &r)
		buf = AppendServerKey(buf[:0], &old)
		buf = AppendCancelTargetKey(buf[:0], &r)
		buf = AppendClientKey(buf[:0], r.Branch, r.Method)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
	// And they append rather than overwrite.
	pre := []byte("prefix")
	out := AppendClientKey(pre, "z9hG4bK1", "BYE")
	if !bytes.HasPrefix(out, []byte("prefix")) {
		t.Fatal("prefix lost")
	}
	// Map lookups with m[string(key)] do not allocate either: the owner's
	// table needs no string per lookup.
	m := map[string]int{string(AppendServerKey(nil, &r)): 1}
	allocs = testing.AllocsPerRun(100, func() {
		buf = AppendServerKey(buf[:0], &r)
		if m[string(buf)] != 1 {
			t.Fatal("lookup")
		}
	})
	if allocs != 0 {
		t.Fatalf("lookup: %v allocations", allocs)
	}
}

func TestMagicCookie(t *testing.T) {
	for _, c := range []struct {
		b    string
		want bool
	}{
		{"z9hG4bK", true},
		{"z9hG4bK776asdhds", true},
		{"Z9HG4BK776asdhds", true},
		{"z9hG4b", false},
		{"", false},
		{"776asdhds", false},
		{"xz9hG4bK", false},
	} {
		if got := HasMagicCookie(c.b); got != c.want {
			t.Errorf("%q: %v", c.b, got)
		}
	}
}

// An RFC 2543 UA acknowledges a 2xx reusing the INVITE's Via (and branch
// without cookie): the ACK finds the INVITE transaction, which passes it up
// from Accepted instead of taking it for the ACK of a non-2xx.
func TestRFC3261_17_2_3_RFC2543ACKOf2xxIsPassedUp(t *testing.T) {
	inv := invite()
	inv.Branch = "1a2b3c"
	table := map[string]*Tx{}
	tx := New(ServerInvite, false, Timers{})
	table[skey(inv)] = &tx
	tx.Step(respond(200), nil)

	ack := inv
	ack.Method, ack.ToTag = "ACK", "314159" // the To tag of the 2xx
	found := table[skey(ack)]
	if found == nil {
		t.Fatal("the ACK does not find the INVITE transaction")
	}
	acts := found.Step(recvACK, nil)
	if sig(acts) != "pass-ack" || found.State() != Accepted {
		t.Fatalf("ACK of the 2xx: %s in %v", sig(acts), found.State())
	}

	// The same ACK after a non-2xx final confirms instead.
	tx2 := New(ServerInvite, false, Timers{})
	tx2.Step(respond(486), nil)
	tx2.Step(recvACK, nil)
	if tx2.State() != Confirmed {
		t.Fatalf("ACK of the 486 left %v", tx2.State())
	}
}
