package profiles

import (
	"testing"
	"unsafe"
)

// A value cut from a received message (calllimit's source_ip, a router's
// set_dlg_profile) is kept as a copy: the message's text is reused once the
// call that handed it over returns.
func TestIssue14_SetProfileKeepsItsOwnValue(t *testing.T) {
	s, _, _ := testSet(t)
	block := "xx 10.0.0.7:5060"
	value := block[3:11]
	mustSet(t, s, "d1", "caller", value, 0, 1)
	ms := s.Memberships("d1")
	if len(ms) != 1 || ms[0].Value != "10.0.0.7" {
		t.Fatalf("memberships %v", ms)
	}
	if unsafe.StringData(ms[0].Value) == unsafe.StringData(value) {
		t.Fatal("the membership keeps the caller's string")
	}
	for v := range s.index["caller"] {
		if unsafe.StringData(v) == unsafe.StringData(value) {
			t.Fatal("the index keeps the caller's string as a key")
		}
	}
}
