package tm_test

import (
	"fmt"
	"log"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm"
)

// A minimal forking proxy: every new call to it rings two phones at once
// (parallel fork, RFC 3261 §16.6), the first to answer gets the call and
// the other is cancelled; requests within a call follow their Route
// headers. tm owns the sockets, the transactions and the timers.
func Example() {
	phone := func(port int) tm.Target {
		return tm.Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port}}
	}
	router := tm.RouterFunc(func(r *tm.Request) tm.Decision {
		if !r.Initial {
			return tm.RelayTo() // in-dialog: by Route, else by Request-URI
		}
		if r.Method != sip.INVITE {
			return tm.Reply(405, "Method Not Allowed")
		}
		d := tm.RelayTo(phone(5071), phone(5072))
		d.RecordRoute = true // stay on the path of the call
		return d
	})
	p, err := tm.New(tm.Options{Config: tm.DefaultConfig(), Router: router})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	addr, err := p.Listen("udp", "127.0.0.1:0", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("serving SIP over", addr.Network())
	// Output: serving SIP over udp
}
