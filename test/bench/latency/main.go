// Command latency measures the time a SIP proxy adds to each message it
// relays, from the packets on the wire: it captures the UDP datagrams to and
// from the proxy's port on the loopback interface (an AF_PACKET socket with
// kernel time stamps, Linux only, root or CAP_NET_RAW), or reads them from a
// pcap file written by tcpdump or tshark (-r), pairs each message out of the
// proxy with the message into it that it relays, and prints the count, p50,
// p99 and maximum of out-in in microseconds, overall and per kind.
//
//	latency -port 5060 [-i lo] [-duration 30s]   # live, until -duration or SIGINT/SIGTERM
//	latency -port 5060 -r capture.pcap           # offline
//
// A message into the proxy is a datagram to the port, one out of it a datagram
// from the port. They pair when Call-ID, CSeq (number and method), the request
// method or the response status, and the To tag are equal: a request from the
// caller relayed to the callee (INVITE, ACK, BYE), or a response from the
// callee relayed to the caller (180, 200). An out message is paired with the
// latest in message of its key before it: a forked INVITE gives one sample per
// branch, a retransmitted 200 relayed again one per copy. What the proxy sends
// of its own (100 Trying, the CANCEL of a losing branch, the ACK of its 487)
// has no in message and is counted as unpaired; so is what it absorbs.
//
// Live capture prints "latency: capturing" on standard error once the socket
// is bound: start the load after that line. Both directions are time-stamped
// by the same kernel path (the loopback receive), so the difference is the
// proxy's time from the datagram reaching its socket to its answer leaving,
// scheduling included.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 0, "the proxy's UDP port (required)")
	ifname := flag.String("i", "lo", "interface of the live capture")
	duration := flag.Duration("duration", 0, "stop the live capture after this long (0: at SIGINT/SIGTERM)")
	pcapFile := flag.String("r", "", "read this pcap file instead of capturing")
	flag.Parse()
	if *port <= 0 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "latency: -port is required (1..65535)")
		flag.Usage()
		os.Exit(2)
	}
	p := newPairer(uint16(*port))
	var stats captureStats
	var err error
	if *pcapFile != "" {
		var f *os.File
		f, err = os.Open(*pcapFile)
		if err == nil {
			err = readPcap(f, p.packet)
			f.Close()
		}
	} else {
		stop := make(chan struct{})
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			var timeout <-chan time.Time
			if *duration > 0 {
				timeout = time.After(*duration)
			}
			select {
			case <-sig:
			case <-timeout:
			}
			close(stop)
		}()
		stats, err = capture(*ifname, uint16(*port), stop, func() {
			fmt.Fprintln(os.Stderr, "latency: capturing")
		}, p.packet)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
	p.report(os.Stdout, stats)
}

// captureStats are the kernel's counters of a live capture.
type captureStats struct {
	live             bool
	packets, dropped uint64
}

// pairer pairs the messages into and out of the proxy.
type pairer struct {
	port     uint16
	in       map[string]int64 // key -> time of the latest message in (ns)
	samples  map[string][]int64
	packets  uint64 // datagrams of the proxy's port seen
	ins      uint64
	outs     uint64
	unpaired uint64
	skipped  uint64 // not parsable as SIP
	swept    int64
}

func newPairer(port uint16) *pairer {
	return &pairer{port: port, in: make(map[string]int64), samples: make(map[string][]int64)}
}

// keep: how long an in message waits for its out; older ones are forgotten
// (the proxy's longest hold of a message is far shorter).
const keep = int64(64 * time.Second)

// packet takes one IPv4 datagram (from its IP header on) seen at ts (ns).
func (p *pairer) packet(ts int64, ip []byte) {
	src, dst, payload, ok := udp(ip)
	if !ok {
		return
	}
	var in bool
	switch {
	case dst == p.port && src != p.port:
		in = true
	case src == p.port && dst != p.port:
	default:
		return
	}
	p.packets++
	kind, key, ok := sipKey(payload)
	if !ok {
		p.skipped++
		return
	}
	if in {
		p.ins++
		p.in[key] = ts
	} else {
		p.outs++
		t0, found := p.in[key]
		if !found || ts < t0 {
			p.unpaired++
		} else {
			p.samples[kind] = append(p.samples[kind], ts-t0)
		}
	}
	if ts-p.swept > int64(10*time.Second) {
		p.swept = ts
		for k, t := range p.in {
			if ts-t > keep {
				delete(p.in, k)
			}
		}
	}
}

// udp: the ports and payload of an IPv4 UDP datagram (not a fragment).
func udp(ip []byte) (src, dst uint16, payload []byte, ok bool) {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return 0, 0, nil, false
	}
	if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // MF or an offset: a fragment
		return 0, 0, nil, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if total < len(ip) && total >= ihl {
		ip = ip[:total]
	}
	if ihl < 20 || len(ip) < ihl+8 {
		return 0, 0, nil, false
	}
	u := ip[ihl:]
	return binary.BigEndian.Uint16(u[0:2]), binary.BigEndian.Uint16(u[2:4]), u[8:], true
}

// sipKey: the kind of a SIP message ("INVITE", "200/INVITE") and the key
// that pairs it: kind, Call-ID, CSeq and To tag.
func sipKey(msg []byte) (kind, key string, ok bool) {
	eol := bytes.IndexByte(msg, '\n')
	if eol < 0 {
		return "", "", false
	}
	first := bytes.TrimRight(msg[:eol], "\r")
	var method, status []byte
	if bytes.HasPrefix(first, []byte("SIP/2.0 ")) {
		rest := first[len("SIP/2.0 "):]
		if len(rest) < 3 {
			return "", "", false
		}
		status = rest[:3]
	} else {
		sp := bytes.IndexByte(first, ' ')
		if sp <= 0 {
			return "", "", false
		}
		method = first[:sp]
	}
	var callID, cseq, toTag []byte
	rest := msg[eol+1:]
	for len(rest) > 0 {
		eol = bytes.IndexByte(rest, '\n')
		var line []byte
		if eol < 0 {
			line, rest = rest, nil
		} else {
			line, rest = rest[:eol], rest[eol+1:]
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break // end of the headers
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimSpace(line[:colon])
		value := bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")):
			callID = value
		case bytes.EqualFold(name, []byte("CSeq")):
			cseq = value
		case bytes.EqualFold(name, []byte("To")) || bytes.EqualFold(name, []byte("t")):
			toTag = tagParam(value)
		}
	}
	if callID == nil || cseq == nil {
		return "", "", false
	}
	cseqNum, cseqMethod, _ := bytes.Cut(cseq, []byte(" "))
	cseqMethod = bytes.TrimSpace(cseqMethod)
	if method != nil {
		kind = string(method)
	} else {
		kind = string(status) + "/" + string(cseqMethod)
	}
	key = kind + "|" + string(callID) + "|" + string(cseqNum) + "|" + string(toTag)
	return kind, key, true
}

// tagParam: the tag parameter of a To header value (after the URI).
func tagParam(v []byte) []byte {
	if gt := bytes.LastIndexByte(v, '>'); gt >= 0 {
		v = v[gt+1:]
	}
	for len(v) > 0 {
		semi := bytes.IndexByte(v, ';')
		if semi < 0 {
			return nil
		}
		v = v[semi+1:]
		param := v
		if next := bytes.IndexByte(v, ';'); next >= 0 {
			param = v[:next]
		}
		name, val, _ := bytes.Cut(param, []byte("="))
		if bytes.EqualFold(bytes.TrimSpace(name), []byte("tag")) {
			return bytes.TrimSpace(val)
		}
	}
	return nil
}

// report prints the distribution of out-in, overall and per kind.
func (p *pairer) report(w io.Writer, st captureStats) {
	if st.live {
		fmt.Fprintf(w, "capture: %d packets to the socket, %d dropped by the kernel\n", st.packets, st.dropped)
	}
	fmt.Fprintf(w, "port %d: %d messages (%d in, %d out), %d paired, %d out unpaired (sent by the proxy itself), %d not SIP\n",
		p.port, p.packets, p.ins, p.outs, p.outs-p.unpaired, p.unpaired, p.skipped)
	fmt.Fprintf(w, "%-14s %9s %10s %10s %10s\n", "kind", "n", "p50_us", "p99_us", "max_us")
	var all []int64
	kinds := make([]string, 0, len(p.samples))
	for k, s := range p.samples {
		kinds = append(kinds, k)
		all = append(all, s...)
	}
	slices.Sort(kinds)
	line := func(name string, s []int64) {
		if len(s) == 0 {
			fmt.Fprintf(w, "%-14s %9d %10s %10s %10s\n", name, 0, "-", "-", "-")
			return
		}
		slices.Sort(s)
		fmt.Fprintf(w, "%-14s %9d %10s %10s %10s\n", name, len(s),
			us(quantile(s, 0.50)), us(quantile(s, 0.99)), us(s[len(s)-1]))
	}
	line("all", all)
	for _, k := range kinds {
		line(k, p.samples[k])
	}
}

// quantile: the nearest-rank q-quantile of sorted s.
func quantile(s []int64, q float64) int64 {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func us(ns int64) string { return strconv.FormatFloat(float64(ns)/1e3, 'f', 1, 64) }

// readPcap feeds the IPv4 datagrams of a pcap file (Ethernet, Linux cooked
// v1 or v2, raw IP) to fn.
func readPcap(r io.Reader, fn func(ts int64, ip []byte)) error {
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder
	var nano bool
	switch {
	case binary.LittleEndian.Uint32(gh[0:4]) == 0xa1b2c3d4:
		bo = binary.LittleEndian
	case binary.BigEndian.Uint32(gh[0:4]) == 0xa1b2c3d4:
		bo = binary.BigEndian
	case binary.LittleEndian.Uint32(gh[0:4]) == 0xa1b23c4d:
		bo, nano = binary.LittleEndian, true
	case binary.BigEndian.Uint32(gh[0:4]) == 0xa1b23c4d:
		bo, nano = binary.BigEndian, true
	default:
		return errors.New("not a pcap file (pcapng is not read: tcpdump -w writes pcap, tshark needs -F pcap)")
	}
	link := bo.Uint32(gh[20:24]) & 0x0fffffff
	var rh [16]byte
	buf := make([]byte, 0, 65536)
	for {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("pcap record: %w", err)
		}
		sec, frac := int64(bo.Uint32(rh[0:4])), int64(bo.Uint32(rh[4:8]))
		n := bo.Uint32(rh[8:12])
		if n > 1<<20 {
			return fmt.Errorf("pcap record of %d bytes", n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("pcap record: %w", err)
		}
		ts := sec * 1e9
		if nano {
			ts += frac
		} else {
			ts += frac * 1e3
		}
		var ip []byte
		switch link {
		case 1: // Ethernet
			if len(buf) >= 14 && binary.BigEndian.Uint16(buf[12:14]) == 0x0800 {
				ip = buf[14:]
			}
		case 113: // Linux cooked v1
			if len(buf) >= 16 && binary.BigEndian.Uint16(buf[14:16]) == 0x0800 {
				ip = buf[16:]
			}
		case 276: // Linux cooked v2
			if len(buf) >= 20 && binary.BigEndian.Uint16(buf[0:2]) == 0x0800 {
				ip = buf[20:]
			}
		case 101, 12, 14: // raw IP
			ip = buf
		default:
			return fmt.Errorf("pcap link type %d not read", link)
		}
		if ip != nil {
			fn(ts, ip)
		}
	}
}
