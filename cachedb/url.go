package cachedb

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ParseURL turns a cachedb_url into go-redis options:
//
//	redis://[[user]:pass@]host[:port][/db]                              single node (port 6379, db 0 by default)
//	redis-sentinel://[[user]:pass@]h1:p1,h2:p2/mastername[/db]          Sentinel; the password is the master's
//	redis-cluster://[[user]:pass@]h1:p1,h2:p2                           Cluster (always db 0)
//
// Errors name the part that is wrong and never repeat the password.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	fail := func(part, format string, a ...any) (*redis.UniversalOptions, error) {
		return nil, fmt.Errorf("cachedb: url %q: %s: %s", redact(raw), part, fmt.Sprintf(format, a...))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return fail("scheme", "missing \"://\"")
	}
	if strings.ContainsAny(rest, "?#") {
		return fail("query", "parameters are not supported")
	}
	authority, path, _ := strings.Cut(rest, "/")
	o := &redis.UniversalOptions{}
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		user, pass, hasPass := strings.Cut(authority[:at], ":")
		var err error
		if o.Username, err = url.PathUnescape(user); err != nil {
			return fail("user", "bad escape")
		}
		if hasPass {
			if o.Password, err = url.PathUnescape(pass); err != nil {
				return fail("password", "bad escape")
			}
		}
		authority = authority[at+1:]
	}
	if authority == "" {
		return fail("host", "missing")
	}
	for _, h := range strings.Split(authority, ",") {
		addr, err := hostPort(h)
		if err != nil {
			return fail(fmt.Sprintf("host %q", h), "%v", err)
		}
		o.Addrs = append(o.Addrs, addr)
	}
	segs := []string{}
	if path != "" {
		segs = strings.Split(path, "/")
	}
	db := func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("not a non-negative integer: %q", s)
		}
		o.DB = n
		return nil
	}
	switch scheme {
	case "redis":
		if len(o.Addrs) != 1 {
			return fail("host", "one host expected, got %d (use redis-sentinel:// or redis-cluster://)", len(o.Addrs))
		}
		if len(segs) > 1 {
			return fail("path", "only /db expected")
		}
		if len(segs) == 1 && segs[0] != "" {
			if err := db(segs[0]); err != nil {
				return fail("db", "%v", err)
			}
		}
	case "redis-sentinel":
		if len(segs) == 0 || segs[0] == "" {
			return fail("master name", "missing")
		}
		if len(segs) > 2 {
			return fail("path", "only /mastername[/db] expected")
		}
		o.MasterName = segs[0]
		if len(segs) == 2 {
			if err := db(segs[1]); err != nil {
				return fail("db", "%v", err)
			}
		}
	case "redis-cluster":
		if len(segs) > 1 || (len(segs) == 1 && segs[0] != "") {
			return fail("path", "a cluster has no database or master name")
		}
		// Even with one seed address, it is a cluster.
		o.IsClusterMode = true
	default:
		return fail("scheme", "%q is not redis, redis-sentinel or redis-cluster", scheme)
	}
	return o, nil
}

// hostPort validates host[:port], defaulting the port to 6379.
func hostPort(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if strings.Contains(err.Error(), "missing port") {
			host, port = h, "6379"
		} else {
			return "", err
		}
	}
	if host == "" {
		return "", fmt.Errorf("missing host name")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("port %q is not 1-65535", port)
	}
	return net.JoinHostPort(host, port), nil
}

// redact hides the userinfo so an error never logs a password.
func redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if at := strings.LastIndexByte(raw, '@'); at >= 0 {
			return "xxx@" + raw[at+1:]
		}
		return raw
	}
	authority, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		authority = "xxx@" + authority[at+1:]
	}
	if hasPath {
		return scheme + "://" + authority + "/" + path
	}
	return scheme + "://" + authority
}
