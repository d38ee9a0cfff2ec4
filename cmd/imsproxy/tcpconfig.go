package main

import (
	"fmt"
	"time"

	"github.com/imsdlg/imsdlg/tm/transport"
)

// TCPSection is the tcp section: what a SIP TCP connection may hold
// (Kamailio's tcp_connection_lifetime, tcp_max_connections, ...). A
// connection beyond a cap is closed at once and counted in the metrics.
type TCPSection struct {
	// ConnectionLifetime closes a connection idle that long.
	ConnectionLifetime time.Duration `config:"connection_lifetime" unit:"s"`
	// ReadTimeout closes a connection whose message started arriving that
	// long ago and is still not complete (a slow sender holds nothing).
	ReadTimeout time.Duration `config:"read_timeout" unit:"s"`
	// WriteTimeout closes a connection whose peer has not taken the bytes
	// waiting for it that long.
	WriteTimeout time.Duration `config:"write_timeout" unit:"s"`
	// MaxConnections caps accepted connections; MaxConnectionsPerIP those
	// from one address.
	MaxConnections      int `config:"max_connections"`
	MaxConnectionsPerIP int `config:"max_connections_per_ip"`
}

func tcpDefaults() map[string]any {
	return map[string]any{
		"tcp.connection_lifetime":    transport.DefaultTCPLifetime.String(),
		"tcp.read_timeout":           transport.DefaultTCPReadTimeout.String(),
		"tcp.write_timeout":          transport.DefaultTCPWriteTimeout.String(),
		"tcp.max_connections":        transport.DefaultTCPMaxConns,
		"tcp.max_connections_per_ip": transport.DefaultTCPMaxConnsPerIP,
	}
}

func (c *Config) validateTCP() []error {
	var errs []error
	s := c.TCP
	pos := func(key string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("config: tcp.%s = %q: must be positive", key, d))
		}
	}
	pos("connection_lifetime", s.ConnectionLifetime)
	pos("read_timeout", s.ReadTimeout)
	pos("write_timeout", s.WriteTimeout)
	if s.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("config: tcp.max_connections = %d: must be at least 1", s.MaxConnections))
	}
	if s.MaxConnectionsPerIP < 1 || s.MaxConnectionsPerIP > s.MaxConnections {
		errs = append(errs, fmt.Errorf("config: tcp.max_connections_per_ip = %d: must be within 1..tcp.max_connections (%d)",
			s.MaxConnectionsPerIP, s.MaxConnections))
	}
	return errs
}

// options fills the TCP limits of the transport.
func (s TCPSection) options(o *transport.Options) {
	o.TCPLifetime, o.TCPReadTimeout, o.TCPWriteTimeout = s.ConnectionLifetime, s.ReadTimeout, s.WriteTimeout
	o.TCPMaxConns, o.TCPMaxConnsPerIP = s.MaxConnections, s.MaxConnectionsPerIP
}
