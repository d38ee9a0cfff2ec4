package cachedb

import (
	"slices"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		url        string
		addrs      []string
		db         int
		master     string
		cluster    bool
		user, pass string
	}{
		{url: "redis://127.0.0.1:6379/0", addrs: []string{"127.0.0.1:6379"}},
		{url: "redis://127.0.0.1:6380/3", addrs: []string{"127.0.0.1:6380"}, db: 3},
		{url: "redis://localhost", addrs: []string{"localhost:6379"}},
		{url: "redis://localhost/", addrs: []string{"localhost:6379"}},
		{url: "redis://:s3cret@10.0.0.1:6379/1", addrs: []string{"10.0.0.1:6379"}, db: 1, pass: "s3cret"},
		{url: "redis://alice:p%40ss@10.0.0.1:6379", addrs: []string{"10.0.0.1:6379"}, user: "alice", pass: "p@ss"},
		{url: "redis://[::1]:6379/2", addrs: []string{"[::1]:6379"}, db: 2},
		{url: "redis-sentinel://h1:26379,h2:26380/mymaster", addrs: []string{"h1:26379", "h2:26380"}, master: "mymaster"},
		{url: "redis-sentinel://:pw@h1:26379/mymaster/4", addrs: []string{"h1:26379"}, master: "mymaster", db: 4, pass: "pw"},
		{url: "redis-cluster://h1:7000,h2:7001,h3:7002", addrs: []string{"h1:7000", "h2:7001", "h3:7002"}, cluster: true},
		{url: "redis-cluster://h1:7000", addrs: []string{"h1:7000"}, cluster: true},
		{url: "redis-cluster://:pw@h1:7000/", addrs: []string{"h1:7000"}, cluster: true, pass: "pw"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			o, err := ParseURL(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(o.Addrs, tc.addrs) || o.DB != tc.db || o.MasterName != tc.master ||
				o.IsClusterMode != tc.cluster || o.Username != tc.user || o.Password != tc.pass {
				t.Errorf("got addrs %v db %d master %q cluster %v user %q pass %q",
					o.Addrs, o.DB, o.MasterName, o.IsClusterMode, o.Username, o.Password)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct{ url, part string }{
		{"127.0.0.1:6379", "scheme"},
		{"http://127.0.0.1:6379", "scheme"},
		{"redis://", "host"},
		{"redis://:pw@/0", "host"},
		{"redis://h1:0", `host "h1:0"`},
		{"redis://h1:99999", `host "h1:99999"`},
		{"redis://h1:abc", `host "h1:abc"`},
		{"redis://:6379", `host ":6379"`},
		{"redis://h1:6379/x", "db"},
		{"redis://h1:6379/-1", "db"},
		{"redis://h1:6379/0/1", "path"},
		{"redis://h1:1,h2:2", "host"},
		{"redis://h1:6379?timeout=1", "query"},
		{"redis-sentinel://h1:26379", "master name"},
		{"redis-sentinel://h1:26379/", "master name"},
		{"redis-sentinel://h1:26379/m/x", "db"},
		{"redis-sentinel://h1:26379/m/1/2", "path"},
		{"redis-sentinel://h1:26379,,h2:1/m", `host ""`},
		{"redis-cluster://h1:7000/0", "path"},
		{"redis-cluster://h1:7000,h2", "host"}, // h2 defaults to 6379: valid, so check below
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			_, err := ParseURL(tc.url)
			if tc.url == "redis-cluster://h1:7000,h2" {
				if err != nil {
					t.Fatalf("default port not applied: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), ": "+tc.part+":") {
				t.Errorf("error %q does not name %q", err, tc.part)
			}
		})
	}
}

func TestParseURLErrorHidesPassword(t *testing.T) {
	_, err := ParseURL("redis://:topsecret@h1:6379/x")
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v shows the password", err)
	}
}

func TestKeys(t *testing.T) {
	k := DefaultKeys()
	tests := []struct{ got, want string }{
		{k.Value("caller", "1234"), "dlg_val_caller_MTIzNA=="},
		{k.Size("caller"), "dlg_size_caller"},
		{k.NoValue("trunk"), "dlg_noval_trunk"},
		{k.Value("caller", "\xff\xfe"), "dlg_val_caller_//4="},
		{Keys{ValuePrefix: "dlgv_", NoValuePrefix: "dlgnv_", SizePrefix: "dlgs_"}.Value("p", "a"), "dlgv_p_YQ=="},
		{k.Membership("node1"), "imsdlg_member_node1"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
