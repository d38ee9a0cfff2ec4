package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/calllimit"
)

// Issue 5 §5: the profiles keys and limits as operators write them.
func TestIssue5_ProfilesSectionAndLimits(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
profiles:
  cachedb_url: redis://127.0.0.1:6379/0
  with_value: [caller/s, trunk]
  no_value: [calls]
  profile_timeout: 3600
  profile_value_prefix: v_
  on_cachedb_error: FAIL_OPEN
  node_id: sbc1
limits:
  - {profile: caller/s, key: from_uri, max: 2, code: 403, reason: "Too many calls"}
  - {profile: calls, max: 100}
`)
	require.NoError(t, err)
	p := c.Profiles
	assert.Equal(t, "redis://127.0.0.1:6379/0", p.CachedbURL)
	assert.Equal(t, []string{"caller/s", "trunk"}, p.WithValue)
	assert.Equal(t, time.Hour, p.ProfileTimeout)
	assert.Equal(t, "v_", p.ValuePrefix)
	assert.Equal(t, "dlg_noval_", p.NoValuePrefix, "defaults stay")
	assert.Equal(t, "fail_open", p.OnCachedbError)
	assert.Equal(t, "sbc1", c.nodeID())
	limits, errs := c.limitList()
	require.Empty(t, errs)
	assert.Equal(t, []calllimit.Limit{
		{Profile: "caller/s", Key: calllimit.KeyFromURI, Max: 2, Code: 403, Reason: "Too many calls"},
		{Profile: "calls", Key: calllimit.KeyNone, Max: 100},
	}, limits)
}

func TestIssue5_ProfilesDefaultsNeedNoRedis(t *testing.T) {
	isolateEnv(t)
	c, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.Empty(t, c.Profiles.CachedbURL)
	assert.Equal(t, "fail_closed", c.Profiles.OnCachedbError)
	assert.Equal(t, 24*time.Hour, c.Profiles.ProfileTimeout)
	assert.Empty(t, c.Limits)
	assert.NotEmpty(t, c.nodeID())
}

func TestIssue5_ProfilesBadValuesNameTheKey(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       []string
	}{
		{"shared without cachedb_url", "profiles: {with_value: [caller/s]}", []string{`profiles.with_value: profile "caller/s" is shared (/s) but profiles.cachedb_url is empty`}},
		{"bad cachedb_url", "profiles: {cachedb_url: 'http://x'}", []string{`profiles.cachedb_url = "http://x"`}},
		{"bad fail mode", "profiles: {on_cachedb_error: ignore}", []string{`profiles.on_cachedb_error = "ignore": must be fail_open or fail_closed`}},
		{"profile_timeout too short", "profiles: {profile_timeout: 0}", []string{`profiles.profile_timeout = "0s"`}},
		{"empty prefix", "profiles: {profile_size_prefix: ''}", []string{`profiles.profile_size_prefix = "": must be non-empty`}},
		{"declared twice", "profiles: {with_value: [a], no_value: [a]}", []string{`profile "a" declared in both`}},
		{"limit on undeclared profile", "limits: [{profile: nope, key: none}]", []string{`limits[0].profile: "nope" is not declared`}},
		{"limit bad key", "profiles: {with_value: [caller]}\nlimits: [{profile: caller, key: contact}]", []string{`limits[0].key = "contact": unknown key "contact"`}},
		{"limit key none on valued profile", "profiles: {with_value: [caller]}\nlimits: [{profile: caller}]", []string{`limits[0].key: profile "caller" has values`}},
		{"limit bad code", "profiles: {no_value: [calls]}\nlimits: [{profile: calls, code: 180}]", []string{`limits[0].code: 180`}},
		{"limit unknown field", "profiles: {no_value: [calls]}\nlimits: [{profile: calls, maximum: 3}]", []string{"maximum"}},
		{"unknown profiles key", "profiles: {cachedb: x}", []string{`unknown key "profiles.cachedb"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := loadYAML(t, tt.yaml)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}
