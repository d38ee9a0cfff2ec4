package dlgout

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func itoa(n int) string { return strconv.Itoa(n) }

// DESIGN §8: the C modules compared CSeq as strings ("10" < "9").
func TestRFC3261_12_2_1_1_CSeqIsANumber(t *testing.T) {
	type obs struct {
		fromCallee bool
		cseq       uint32
		method     string
	}
	for _, tc := range []struct {
		name         string
		invite       uint32
		seen         []obs
		local, remot uint32
	}{
		{name: "9 then 10", invite: 9, seen: []obs{{false, 10, "UPDATE"}}, local: 10},
		{name: "10 then 9 keeps 10", invite: 1, seen: []obs{{false, 10, "INFO"}, {false, 9, "INFO"}}, local: 10},
		{name: "99 then 100", invite: 99, seen: []obs{{false, 100, "PRACK"}}, local: 100},
		{name: "directions are apart", invite: 5, seen: []obs{{true, 1000, "UPDATE"}, {false, 6, "PRACK"}}, local: 6, remot: 1000},
		{name: "callee 9 then 10", invite: 1, seen: []obs{{true, 9, "INVITE"}, {true, 10, "ACK"}}, local: 1, remot: 10},
		{name: "ACK of a missed re-INVITE counts", invite: 1, seen: []obs{{false, 4, "ACK"}}, local: 4},
		{name: "2^31-1", invite: 1, seen: []obs{{false, MaxCSeq, "UPDATE"}}, local: MaxCSeq},
		{name: "above 2^31 as sent by a broken peer", invite: 1, seen: []obs{{false, 1<<32 - 1, "INFO"}}, local: 1<<32 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set
			mustResp(t, &s, 0, rsp(t, 183, "b1", "CSeq: "+itoa(int(tc.invite))+" INVITE"))
			for _, o := range tc.seen {
				require.NoError(t, s.ObserveRequest("b1", o.fromCallee, o.cseq, o.method))
			}
			leg := s.Get("b1")
			assert.Equal(t, tc.local, leg.LocalCSeq)
			assert.Equal(t, tc.remot, leg.RemoteCSeq)
		})
	}
}

// RFC 3261 §12.2.1.1: a request we generate on the leg (a BYE) goes above
// everything seen in its direction, PRACK, UPDATE and re-INVITE included,
// and two of them never share a number.
func TestRFC3261_12_2_1_1_NextCSeqAboveEverythingSeen(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 183, "b1", "CSeq: 9 INVITE"))
	mustResp(t, &s, 0, rsp(t, 200, "b1", "CSeq: 9 INVITE"))
	require.NoError(t, s.ObserveRequest("b1", false, 10, "PRACK"))
	require.NoError(t, s.ObserveRequest("b1", false, 11, "ACK"))
	require.NoError(t, s.ObserveRequest("b1", false, 12, "INVITE"))
	require.NoError(t, s.ObserveRequest("b1", false, 12, "ACK"))
	require.NoError(t, s.ObserveRequest("b1", true, 700, "UPDATE"))

	n, err := s.NextCSeq("b1", true)
	require.NoError(t, err)
	assert.Equal(t, uint32(13), n, "towards the callee: above the re-INVITE")
	n, err = s.NextCSeq("b1", true)
	require.NoError(t, err)
	assert.Equal(t, uint32(14), n, "a second BYE gets its own number")
	n, err = s.NextCSeq("b1", false)
	require.NoError(t, err)
	assert.Equal(t, uint32(701), n, "towards the caller: above the callee's UPDATE")

	// The caller goes on after our requests: its numbers reach the callee
	// two higher, and ours stay above them.
	require.NoError(t, s.ObserveRequest("b1", false, 20, "UPDATE"))
	assert.Equal(t, uint32(2), s.Get("b1").Shift(true))
	assert.Equal(t, uint32(1), s.Get("b1").Shift(false))
	n, err = s.NextCSeq("b1", true)
	require.NoError(t, err)
	assert.Equal(t, uint32(23), n, "20 arrived as 22")
}

func TestRFC3261_8_1_1_5_NextCSeqBelow2To31(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 183, "b1", "CSeq: 1 INVITE"))
	require.NoError(t, s.ObserveRequest("b1", false, MaxCSeq-1, "UPDATE"))
	n, err := s.NextCSeq("b1", true)
	require.NoError(t, err)
	assert.Equal(t, MaxCSeq, n)
	_, err = s.NextCSeq("b1", true)
	assert.ErrorIs(t, err, ErrCSeqExhausted)
	assert.Equal(t, uint32(1), s.Get("b1").ToCalleeShift, "a refused number is not taken")

	require.NoError(t, s.ObserveRequest("b1", true, 1<<32-1, "INFO"))
	_, err = s.NextCSeq("b1", false)
	assert.ErrorIs(t, err, ErrCSeqExhausted)
}

func TestRFC3261_12_2_1_1_CSeqOnUnknownLeg(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 183, "b1"))
	assert.ErrorIs(t, s.ObserveRequest("b2", false, 5, "BYE"), ErrUnknownLeg)
	_, err := s.NextCSeq("b2", true)
	assert.ErrorIs(t, err, ErrUnknownLeg)
	var empty Set
	assert.ErrorIs(t, empty.ObserveRequest("b1", true, 5, "BYE"), ErrUnknownLeg)
}
