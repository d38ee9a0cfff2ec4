package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/internal/routing"
)

// The roles the daemon can play (key role).
const (
	RoleStandalone = "standalone"
	RolePCSCF      = "pcscf"
	RoleSCSCF      = "scscf"
)

// PCSCFSection is the pcscf section, read when role is pcscf.
type PCSCFSection struct {
	// SCSCFURI is the S-CSCF originating requests and REGISTERs go to.
	SCSCFURI string `config:"scscf_uri"`
	// Path adds our Path to REGISTERs (RFC 3327).
	Path bool `config:"path"`

	// SCSCF is SCSCFURI parsed.
	SCSCF sip.Uri `config:"-"`
}

// SCSCFSection is the scscf section, read when role is scscf.
type SCSCFSection struct {
	ASRules []ASRuleSection `config:"as_rules"`

	// Rules are ASRules parsed, in order.
	Rules []routing.ASRule `config:"-"`
}

// ASRuleSection is one entry of scscf.as_rules.
type ASRuleSection struct {
	Method string `config:"method"`
	RURI   string `config:"ruri"`
	From   string `config:"from"`
	AS     string `config:"as"`
}

func roleDefaults() map[string]any {
	return map[string]any{
		"role":            RoleStandalone,
		"pcscf.scscf_uri": "",
		"pcscf.path":      true,
		"scscf.as_rules":  []any{},
		"replicate":       []any{},
	}
}

// validateRoles checks role, pcscf.* and scscf.*; each problem names its
// key.
func (c *Config) validateRoles() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}
	role := strings.ToLower(strings.TrimSpace(c.Role))
	switch role {
	case RoleStandalone, RolePCSCF, RoleSCSCF:
		c.Role = role
	default:
		bad("role", c.Role, "must be standalone, pcscf or scscf")
	}

	c.PCSCF.SCSCF = sip.Uri{}
	switch u := strings.TrimSpace(c.PCSCF.SCSCFURI); {
	case u == "" && role == RolePCSCF:
		errs = append(errs, errors.New("config: pcscf.scscf_uri: required when role is pcscf (the S-CSCF's SIP URI, e.g. \"sip:scscf.ims.example.net:6060\")"))
	case u != "":
		parsed, err := parseHopURI(u)
		if err != nil {
			bad("pcscf.scscf_uri", c.PCSCF.SCSCFURI, "%v", err)
		}
		c.PCSCF.SCSCF = parsed
	}

	c.SCSCF.Rules = nil
	for i, r := range c.SCSCF.ASRules {
		key := fmt.Sprintf("scscf.as_rules[%d]", i)
		rule := routing.ASRule{}
		var ok bool
		rule.Method, rule.RURI, rule.From, ok = parseMatch(key, r.Method, r.RURI, r.From, bad)
		if rule.Method == "" && ok {
			rule.Method = sip.INVITE
		}
		if strings.TrimSpace(r.AS) == "" {
			errs = append(errs, fmt.Errorf("config: %s.as: required (the application server's SIP URI)", key))
			ok = false
		} else if u, err := parseHopURI(r.AS); err != nil {
			bad(key+".as", r.AS, "%v", err)
			ok = false
		} else {
			rule.AS = u
		}
		if ok {
			c.SCSCF.Rules = append(c.SCSCF.Rules, rule)
		}
	}

	if role == RolePCSCF || role == RoleSCSCF {
		if _, err := c.selfURI(); err != nil {
			errs = append(errs, fmt.Errorf("config: advertise: %v", err))
		}
	}
	return errs
}

// parseMatch parses the filter of a rule list entry at key: method ("" when
// not given), and the ruri and from Go regular expressions when set. ok is
// false when bad was told of a problem.
func parseMatch(key, method, ruri, from string, bad func(key string, val any, format string, args ...any)) (m sip.RequestMethod, ruriRe, fromRe *regexp.Regexp, ok bool) {
	ok = true
	switch s := strings.ToUpper(strings.TrimSpace(method)); {
	case s == "":
	case isToken(s):
		m = sip.RequestMethod(s)
	default:
		bad(key+".method", method, "not a SIP method")
		ok = false
	}
	for _, f := range []struct {
		name string
		src  string
		dst  **regexp.Regexp
	}{{"ruri", ruri, &ruriRe}, {"from", from, &fromRe}} {
		if f.src == "" {
			continue
		}
		re, err := regexp.Compile(f.src)
		if err != nil {
			bad(key+"."+f.name, f.src, "not a Go regular expression: %v", err)
			ok = false
			continue
		}
		*f.dst = re
	}
	return m, ruriRe, fromRe, ok
}

// ReplicateSection is one entry of replicate (t_replicate).
type ReplicateSection struct {
	Method string `config:"method"`
	RURI   string `config:"ruri"`
	From   string `config:"from"`
	To     string `config:"to"`
}

// validateReplicate checks replicate; each problem names its key.
func (c *Config) validateReplicate() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}
	c.Replications = nil
	for i, r := range c.Replicate {
		key := fmt.Sprintf("replicate[%d]", i)
		rule := routing.Replication{}
		var ok bool
		rule.Method, rule.RURI, rule.From, ok = parseMatch(key, r.Method, r.RURI, r.From, bad)
		switch rule.Method {
		case "":
			if ok {
				errs = append(errs, fmt.Errorf("config: %s.method: required (the method copied, e.g. REGISTER)", key))
			}
			ok = false
		case sip.ACK, sip.CANCEL:
			bad(key+".method", r.Method, "an %s has no transaction of its own to copy", rule.Method)
			ok = false
		}
		if strings.TrimSpace(r.To) == "" {
			errs = append(errs, fmt.Errorf("config: %s.to: required (the SIP URI the copy goes to)", key))
			ok = false
		} else if u, err := parseHopURI(r.To); err != nil {
			bad(key+".to", r.To, "%v", err)
			ok = false
		} else {
			rule.To = u.String()
		}
		if ok {
			c.Replications = append(c.Replications, rule)
		}
	}
	return errs
}

// parseHopURI parses a URI the proxy sends requests to by a Route: sip:
// only (tm has no TLS), transport udp or tcp.
func parseHopURI(s string) (sip.Uri, error) {
	u, err := parseSIPURI(s)
	if err != nil {
		return sip.Uri{}, err
	}
	if u.Scheme != "sip" {
		return sip.Uri{}, fmt.Errorf("scheme %q is not supported (sip only: no TLS)", u.Scheme)
	}
	if tp, ok := u.UriParams.Get("transport"); ok && !strings.EqualFold(tp, "udp") && !strings.EqualFold(tp, "tcp") {
		return sip.Uri{}, fmt.Errorf("transport %q is not udp or tcp", tp)
	}
	return u, nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-.!%*_+`'~", r)) {
			return false
		}
	}
	return true
}

// selfURI is the URI other nodes reach this proxy at, for the Path of the
// P-CSCF and the Route an AS sends a request back to the S-CSCF by: the
// advertised host (and port), else the first UDP listener (else the first
// one), with transport=tcp when that listener is TCP.
func (c *Config) selfURI() (sip.Uri, error) {
	if len(c.ListenAddrs) == 0 {
		return sip.Uri{}, errors.New("no listen address")
	}
	l := c.ListenAddrs[0]
	for _, a := range c.ListenAddrs {
		if a.Network == "udp" {
			l = a
			break
		}
	}
	host, port := l.Host, l.Port
	if c.AdvertiseHost != "" {
		host = c.AdvertiseHost
		if c.AdvertisePort > 0 {
			port = c.AdvertisePort
		}
	} else if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return sip.Uri{}, fmt.Errorf("needed when role is %s and %s is a wildcard address: our Path/Route must name an address others reach", c.Role, l)
	}
	u := sip.Uri{Scheme: "sip", Host: host, Port: port, UriParams: sip.NewParams()}
	if l.Network == "tcp" {
		u.UriParams.Add("transport", "tcp")
	}
	return u, nil
}

// buildRouter is the request route of the configured role.
func buildRouter(cfg *Config, loc *location.Store, log *slog.Logger) (routing.Role, error) {
	nextHop := ""
	if cfg.NextHopAddr != nil {
		nextHop = cfg.NextHopAddr.String()
	}
	base := routing.Config{Domains: cfg.Domains, NextHop: nextHop, RecordRoute: cfg.RecordRoute}
	switch cfg.Role {
	case RolePCSCF:
		self, err := cfg.selfURI()
		if err != nil {
			return nil, fmt.Errorf("advertise: %w", err)
		}
		return routing.NewPCSCF(base, routing.PCSCFConfig{SCSCF: cfg.PCSCF.SCSCF, Path: cfg.PCSCF.Path, Self: self}, nil, log), nil
	case RoleSCSCF:
		self, err := cfg.selfURI()
		if err != nil {
			return nil, fmt.Errorf("advertise: %w", err)
		}
		return routing.NewSCSCF(base, routing.SCSCFConfig{Self: self, Rules: cfg.SCSCF.Rules}, loc, log), nil
	}
	return routing.New(base, loc, log), nil
}
