package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/internal/routing"
)

// The shipped role configurations load, validate and say what they claim.
func TestRoles_ShippedConfigsLoadAndValidate(t *testing.T) {
	isolateEnv(t)
	for _, tc := range []struct {
		file, role string
	}{{"pcscf.yaml", RolePCSCF}, {"scscf.yaml", RoleSCSCF}} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "configs", tc.file)
			var out, errb bytes.Buffer
			require.Equal(t, 0, run(context.Background(), []string{"--config", path, "--check"}, &out, &errb), errb.String())
			assert.Contains(t, out.String(), "is valid")

			c, err := LoadConfig(path, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.role, c.Role)
			r, err := buildRouter(c, location.New(location.Options{}), nil)
			require.NoError(t, err)
			switch tc.role {
			case RolePCSCF:
				assert.IsType(t, &routing.PCSCF{}, r)
				assert.Equal(t, "sip:127.0.0.1:6060", c.PCSCF.SCSCF.String())
				assert.True(t, c.PCSCF.Path)
				require.Len(t, c.Limits, 1, "the per-UE call limit example")
				assert.Equal(t, "from_uri", c.Limits[0].Key)
			case RoleSCSCF:
				assert.IsType(t, &routing.SCSCF{}, r)
				require.Len(t, c.SCSCF.Rules, 2)
				assert.Equal(t, sip.INVITE, c.SCSCF.Rules[0].Method)
				assert.Equal(t, sip.MESSAGE, c.SCSCF.Rules[1].Method)
			}
		})
	}
}

func TestRoles_DefaultIsStandalone(t *testing.T) {
	isolateEnv(t)
	c, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.Equal(t, RoleStandalone, c.Role)
	assert.True(t, c.PCSCF.Path)
	assert.Empty(t, c.PCSCF.SCSCFURI)
	assert.Empty(t, c.SCSCF.Rules)
	r, err := buildRouter(c, location.New(location.Options{}), nil)
	require.NoError(t, err)
	assert.IsType(t, &routing.Router{}, r)
}

func TestRoles_KeysAsOperatorsWriteThem(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
role: SCSCF
listen: ["tcp:127.0.0.1:6070"]
pcscf: {scscf_uri: "sip:10.0.0.2:6060;transport=tcp", path: false}
scscf:
  as_rules:
    - {ruri: "^sip:bob@", as: "sip:as1.example.net"}
    - {method: message, from: "alice", as: "sip:as2.example.net:7070;lr"}
`)
	require.NoError(t, err)
	assert.Equal(t, RoleSCSCF, c.Role, "any case")
	assert.False(t, c.PCSCF.Path)
	assert.Equal(t, "sip:10.0.0.2:6060;transport=tcp", c.PCSCF.SCSCF.String())
	require.Len(t, c.SCSCF.Rules, 2)
	r0, r1 := c.SCSCF.Rules[0], c.SCSCF.Rules[1]
	assert.Equal(t, sip.INVITE, r0.Method, "INVITE by default")
	assert.Equal(t, "^sip:bob@", r0.RURI.String())
	assert.Nil(t, r0.From)
	assert.Equal(t, "sip:as1.example.net", r0.AS.String())
	assert.Equal(t, sip.MESSAGE, r1.Method)
	assert.Equal(t, "alice", r1.From.String())
	self, err := c.selfURI()
	require.NoError(t, err)
	assert.Equal(t, "sip:127.0.0.1:6070;transport=tcp", self.String(), "a TCP-only node says so in its Route")

	// The environment and --set reach the role keys too.
	t.Setenv("IMSDLG_ROLE", "pcscf")
	c, err = LoadConfig("", map[string]string{"pcscf.scscf_uri": "sip:127.0.0.1:6060", "advertise": "pcscf.example.net:5080"})
	require.NoError(t, err)
	assert.Equal(t, RolePCSCF, c.Role)
	self, err = c.selfURI()
	require.NoError(t, err)
	assert.Equal(t, "sip:pcscf.example.net:5080", self.String(), "the advertised address is the one others reach")
	r, err := buildRouter(c, location.New(location.Options{}), nil)
	require.NoError(t, err)
	assert.IsType(t, &routing.PCSCF{}, r)
}

func TestRoles_BadValuesNameTheKey(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"unknown role", "role: mgcf", []string{`role = "mgcf": must be standalone, pcscf or scscf`}},
		{"pcscf without its S-CSCF", "role: pcscf", []string{`pcscf.scscf_uri: required when role is pcscf`}},
		{"S-CSCF URI not SIP", "role: pcscf\npcscf: {scscf_uri: 'tel:+15551234'}", []string{`pcscf.scscf_uri = "tel:+15551234": scheme "tel"`}},
		{"S-CSCF URI over TLS", "pcscf: {scscf_uri: 'sips:scscf.example.net'}", []string{`pcscf.scscf_uri = "sips:scscf.example.net": scheme "sips" is not supported`}},
		{"unknown pcscf key", "pcscf: {scscf: x}", []string{`unknown key "pcscf.scscf"`}},
		{"rule without AS", "scscf: {as_rules: [{as: 'sip:as1'}, {method: INVITE}]}", []string{`scscf.as_rules[1].as: required`}},
		{"rule with a bad regexp", "scscf: {as_rules: [{ruri: '(', from: '[', as: 'sip:as1'}]}", []string{
			`scscf.as_rules[0].ruri = "(": not a Go regular expression`, `scscf.as_rules[0].from = "[": not a Go regular expression`}},
		{"rule with a bad method", "scscf: {as_rules: [{method: 'IN VITE', as: 'sip:as1'}]}", []string{`scscf.as_rules[0].method = "IN VITE": not a SIP method`}},
		{"rule with a bad transport", "scscf: {as_rules: [{as: 'sip:as1;transport=sctp'}]}", []string{`scscf.as_rules[0].as = "sip:as1;transport=sctp": transport "sctp"`}},
		{"rule with an unknown field", "scscf: {as_rules: [{uri: x, as: 'sip:as1'}]}", []string{`scscf.as_rules[0]`, "uri"}},
		{"rules not a list of maps", "scscf: {as_rules: [sip:as1]}", []string{`scscf.as_rules[0]`}},
		{"wildcard listen without advertise", "role: scscf\nlisten: ['udp:0.0.0.0:6060']", []string{`advertise: needed when role is scscf`}},
		{"replicate without method or to", "replicate: [{ruri: '^sip:'}]", []string{`replicate[0].method: required`, `replicate[0].to: required`}},
		{"replicate an ACK", "replicate: [{method: ack, to: 'sip:rec'}]", []string{`replicate[0].method = "ack": an ACK has no transaction`}},
		{"replicate with a bad regexp and URI", "replicate: [{method: MESSAGE, from: '(', to: 'mailto:rec@x'}]", []string{
			`replicate[0].from = "(": not a Go regular expression`, `replicate[0].to = "mailto:rec@x"`}},
		{"replicate with an unknown field", "replicate: [{method: REGISTER, dst: 'sip:rec'}]", []string{`replicate[0]`, "dst"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := loadYAML(t, tt.yaml)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), "config: ")
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// OpenSIPS tm t_replicate as the daemon's replicate list: parsed in order,
// the method upper-cased, the URI kept for tm.
func TestSeedTm_1_4_19_ReplicateConfig(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, "replicate:\n  - {method: register, to: 'sip:127.0.0.1:5062'}\n  - {method: MESSAGE, ruri: '^sip:rec', to: 'sip:rec.example.net;transport=tcp'}\n")
	require.NoError(t, err)
	require.Len(t, c.Replications, 2)
	assert.Equal(t, sip.REGISTER, c.Replications[0].Method)
	assert.Equal(t, "sip:127.0.0.1:5062", c.Replications[0].To)
	assert.Nil(t, c.Replications[0].RURI)
	assert.Equal(t, sip.MESSAGE, c.Replications[1].Method)
	assert.Equal(t, "sip:rec.example.net;transport=tcp", c.Replications[1].To)
	require.NotNil(t, c.Replications[1].RURI)
	assert.True(t, c.Replications[1].RURI.MatchString("sip:rec@x"))
}
