package dlgout

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Record-Route lists are written top first, as in the message: the top
// entry is the proxy nearest the callee.
func TestRFC3261_12_1_2_RouteSetFromRecordRoute(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rr     []string
		ours   func(*sip.Uri) bool
		callee []string
		caller []string
	}{
		{name: "no Record-Route", rr: nil, ours: ours, callee: []string{}, caller: []string{}},
		{name: "0 other proxies", rr: []string{"ours"}, ours: ours, callee: []string{}, caller: []string{}},
		{
			name: "1 proxy on the callee side",
			rr:   []string{"sip:icscf.example.net;lr", "ours"}, ours: ours,
			callee: []string{"icscf.example.net"}, caller: []string{},
		},
		{
			name: "1 proxy on the caller side",
			rr:   []string{"ours", "sip:pcscf.example.net;lr"}, ours: ours,
			callee: []string{}, caller: []string{"pcscf.example.net"},
		},
		{
			name: "3 proxies on each side",
			rr: []string{
				"sip:c3.example.net;lr", "sip:c2.example.net;lr", "sip:c1.example.net;lr",
				"ours",
				"sip:a1.example.net;lr", "sip:a2.example.net;lr", "sip:a3.example.net;lr",
			},
			ours:   ours,
			callee: []string{"c1.example.net", "c2.example.net", "c3.example.net"},
			caller: []string{"a1.example.net", "a2.example.net", "a3.example.net"},
		},
		{
			name: "double record-routing (RFC 5658) counts as one entry",
			rr: []string{
				"sip:c1.example.net;lr",
				"sip:" + ourHost + ";lr;transport=tcp;did=a1b2", "sip:" + ourHost + ";lr;did=a1b2",
				"sip:a1.example.net;lr",
			},
			ours:   ours,
			callee: []string{"c1.example.net"}, caller: []string{"a1.example.net"},
		},
		{
			name: "spiral through an AS: anchored on our lowest entry",
			rr: []string{
				"sip:icscf.example.net;lr", "ours", "sip:as.example.net;lr", "ours",
				"sip:pcscf.example.net;lr",
			},
			ours:   ours,
			callee: []string{"as.example.net", ourHost, "icscf.example.net"},
			caller: []string{"pcscf.example.net"},
		},
		{
			name: "our entry absent: each side gets all, in its own order",
			rr:   []string{"sip:p2.example.net;lr", "sip:p1.example.net;lr"}, ours: ours,
			callee: []string{"p1.example.net", "p2.example.net"}, caller: []string{"p2.example.net", "p1.example.net"},
		},
		{
			name: "nil ourRR is our entry absent",
			rr:   []string{"sip:c1.example.net;lr", "ours"}, ours: nil,
			callee: []string{ourHost, "c1.example.net"}, caller: []string{"c1.example.net", ourHost},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr := uris(t, tc.rr...)
			assert.Equal(t, tc.callee, hosts(CalleeRouteSet(rr, tc.ours)), "callee side")
			assert.Equal(t, tc.caller, hosts(CallerRouteSet(rr, tc.ours)), "caller side")
		})
	}
}

// The route set is kept as received (§12.1.2: "the URIs ... including all
// URI parameters"), and as a copy, not an alias of the message.
func TestRFC3261_12_1_2_RouteSetKeepsParametersAndDoesNotAlias(t *testing.T) {
	rr := uris(t, "sip:c1.example.net:5070;lr;transport=tcp;ftag=x", "ours", "sip:a1.example.net;lr;foo=bar")
	callee := CalleeRouteSet(rr, ours)
	caller := CallerRouteSet(rr, ours)
	require.Len(t, callee, 1)
	require.Len(t, caller, 1)
	assert.Equal(t, "sip:c1.example.net:5070;lr;transport=tcp;ftag=x", callee[0].String())
	assert.Equal(t, "sip:a1.example.net;lr;foo=bar", caller[0].String())

	rr[0].UriParams[0].V = "changed"
	rr[2].UriParams[1].V = "changed"
	assert.Equal(t, "sip:c1.example.net:5070;lr;transport=tcp;ftag=x", callee[0].String())
	assert.Equal(t, "sip:a1.example.net;lr;foo=bar", caller[0].String())
}

// sipgo splits a comma-separated Record-Route value into several headers;
// OnResponse must see one entry per URI, in order.
func TestRFC3261_7_3_1_CommaSeparatedRecordRoute(t *testing.T) {
	res := rsp(t, 180, "b1",
		"Contact: <sip:bob@10.0.0.2>",
		"Record-Route: <sip:c2.example.net;lr>, <sip:c1.example.net;lr>",
		"Record-Route: <sip:"+ourHost+";lr;did=a1b2>,<sip:a1.example.net;lr>",
	)
	var s Set
	leg := mustResp(t, &s, 0, res)
	assert.Equal(t, []string{"c1.example.net", "c2.example.net"}, hosts(leg.RouteSet))
}

func TestRFC3261_12_1_2_OnResponseRouteSetWithProxies(t *testing.T) {
	for _, tc := range []struct {
		name string
		rr   []string
		want []string
	}{
		{name: "0 proxies", rr: []string{"Record-Route: <sip:" + ourHost + ";lr>"}, want: []string{}},
		{name: "1 proxy", rr: []string{"Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:" + ourHost + ";lr>"}, want: []string{"c1.example.net"}},
		{
			name: "3 proxies and one below us",
			rr: []string{
				"Record-Route: <sip:c3.example.net;lr>", "Record-Route: <sip:c2.example.net;lr>",
				"Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:" + ourHost + ";lr>",
				"Record-Route: <sip:a1.example.net;lr>",
			},
			want: []string{"c1.example.net", "c2.example.net", "c3.example.net"},
		},
		{
			name: "double RR",
			rr: []string{
				"Record-Route: <sip:c1.example.net;lr>",
				"Record-Route: <sip:" + ourHost + ";lr;transport=tcp>", "Record-Route: <sip:" + ourHost + ";lr>",
			},
			want: []string{"c1.example.net"},
		},
		{
			name: "more entries than the stack buffer holds",
			rr: []string{
				"Record-Route: <sip:c9.example.net;lr>, <sip:c8.example.net;lr>, <sip:c7.example.net;lr>",
				"Record-Route: <sip:c6.example.net;lr>, <sip:c5.example.net;lr>, <sip:c4.example.net;lr>",
				"Record-Route: <sip:c3.example.net;lr>, <sip:c2.example.net;lr>, <sip:c1.example.net;lr>",
				"Record-Route: <sip:" + ourHost + ";lr>",
			},
			want: []string{
				"c1.example.net", "c2.example.net", "c3.example.net", "c4.example.net", "c5.example.net",
				"c6.example.net", "c7.example.net", "c8.example.net", "c9.example.net",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set
			leg := mustResp(t, &s, 0, rsp(t, 183, "b1", tc.rr...))
			assert.Equal(t, tc.want, hosts(leg.RouteSet))
		})
	}
}
