package location

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func parseURI(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	require.NoError(t, sip.ParseUri(s, &u), "test URI %q", s)
	return u
}

func TestRFC3261_10_3_Step5_NormalizeAOR(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"sip:alice@ims.example.com", "sip:alice@ims.example.com"},
		{"sip:alice@IMS.Example.COM", "sip:alice@ims.example.com"},
		{"SIP:alice@ims.example.com", "sip:alice@ims.example.com"},
		{"sip:Alice@ims.example.com", "sip:Alice@ims.example.com"},
		{"sips:alice@ims.example.com", "sips:alice@ims.example.com"},
		{"sip:alice@ims.example.com:5060", "sip:alice@ims.example.com"},
		{"sips:alice@ims.example.com:5061", "sips:alice@ims.example.com"},
		{"sips:alice@ims.example.com:5060", "sips:alice@ims.example.com:5060"},
		{"sip:alice@ims.example.com:5080", "sip:alice@ims.example.com:5080"},
		{"sip:alice@ims.example.com;user=phone;transport=tcp?subject=hi", "sip:alice@ims.example.com"},
		{"sip:al%69ce@ims.example.com", "sip:alice@ims.example.com"},
		{"sip:%2B15551234@ims.example.com;user=phone", "sip:+15551234@ims.example.com"},
		{"sip:alice:secret@ims.example.com", "sip:alice@ims.example.com"},
		{"sip:ims.example.com", "sip:ims.example.com"},
		{"sip:alice@[2001:DB8::1]:5062", "sip:alice@[2001:db8::1]:5062"},
		{"tel:+1-555-123-4567;phone-context=example.com", "tel:+15551234567"},
		{"*", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			assert.Equal(t, tc.want, NormalizeAOR(parseURI(t, tc.in)))
		})
	}
}

func TestRFC3261_19_1_4_ContactURIComparison(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"sip:alice@192.0.2.1", "sip:alice@192.0.2.1", true},
		{"sip:alice@UE.example.com", "sip:alice@ue.EXAMPLE.com", true},
		{"sip:Alice@ue.example.com", "sip:alice@ue.example.com", false},
		{"sip:%61lice@ue.example.com", "sip:alice@ue.example.com", true},
		{"sip:alice@ue.example.com", "sips:alice@ue.example.com", false},
		{"sip:alice@ue.example.com", "sip:alice@ue.example.com:5060", false},
		{"sip:alice@ue.example.com:5062", "sip:alice@ue.example.com:5062", true},
		{"sip:alice@ue.example.com;transport=TCP", "sip:alice@ue.example.com;Transport=tcp", true},
		{"sip:alice@ue.example.com;transport=tcp", "sip:alice@ue.example.com", false},
		{"sip:alice@ue.example.com;maddr=239.255.255.1", "sip:alice@ue.example.com", false},
		{"sip:alice@ue.example.com;user=phone", "sip:alice@ue.example.com", false},
		{"sip:alice@ue.example.com;ob", "sip:alice@ue.example.com", true},
		{"sip:alice@ue.example.com;foo=1", "sip:alice@ue.example.com;foo=2", false},
		{"sip:alice@ue.example.com?subject=x", "sip:alice@ue.example.com", false},
		{"sip:alice@ue.example.com?subject=x", "sip:alice@ue.example.com?subject=x", true},
		{"tel:+15551234", "tel:+15551234", true},
		{"tel:+15551234", "tel:+15551235", false},
	}
	for _, tc := range tests {
		t.Run(tc.a+" vs "+tc.b, func(t *testing.T) {
			a, b := parseURI(t, tc.a), parseURI(t, tc.b)
			assert.Equal(t, tc.want, uriEqual(&a, &b))
			assert.Equal(t, tc.want, uriEqual(&b, &a), "comparison is symmetric")
		})
	}
}

func TestParseQ_RFC3261_25_1_Grammar(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		ok   bool
	}{
		{"0", 0, true}, {"0.", 0, true}, {"0.5", 0.5, true}, {"0.999", 0.999, true},
		{"1", 1, true}, {"1.0", 1, true}, {"1.000", 1, true},
		{"", 0, false}, {"1.5", 0, false}, {"2", 0, false}, {"0.0001", 0, false},
		{".5", 0, false}, {"05", 0, false}, {"0x1", 0, false}, {"NaN", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := parseQ(tc.in)
			assert.Equal(t, tc.ok, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}
