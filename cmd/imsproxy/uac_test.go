package main

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/mgmt"
)

// Issue 15 §9: tm.uac_dlg refuses what would smuggle headers into the
// request it sends: core headers among the extra ones, control bytes in
// any argument. Nothing is sent (the proxy is not even needed).
func TestIssue15_UacDlgRefusesSmuggling(t *testing.T) {
	for _, tc := range []struct{ name, params, want string }{
		{"a Via among the headers", `{"method":"OPTIONS","ruri":"sip:a@127.0.0.1","headers":["Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKx"]}`, `headers[0]`},
		{"a Call-ID among the headers", `{"method":"OPTIONS","ruri":"sip:a@127.0.0.1","headers":["Call-ID: chosen"]}`, `set by the proxy`},
		{"CRLF in a header", `{"method":"OPTIONS","ruri":"sip:a@127.0.0.1","headers":["X-A: 1\r\nX-B: 2"]}`, `control byte`},
		{"CRLF in the ruri", `{"method":"OPTIONS","ruri":"sip:a@127.0.0.1\r\nVia: x"}`, `argument "ruri"`},
		{"NUL in from", `{"method":"OPTIONS","ruri":"sip:a@127.0.0.1","from":"sip:x@y\u0000"}`, `argument "from"`},
		{"NUL in the body", `{"method":"MESSAGE","ruri":"sip:a@127.0.0.1","body":"a\u0000b"}`, `argument "body"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := uacDlg(context.Background(), nil, json.RawMessage(tc.params))
			var rpcErr *mgmt.Error
			require.True(t, errors.As(err, &rpcErr), "%v", err)
			assert.Equal(t, mgmt.CodeInvalidParams, rpcErr.Code)
			assert.Contains(t, rpcErr.Message, tc.want)
		})
	}
}
