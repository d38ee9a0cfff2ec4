// Command limitproxy is a SIP proxy built from the imsdlg packages in
// under 100 lines: it sends every new call to one next hop, stays on the
// call's path (Record-Route), keeps a dialog per call, and lets each
// caller have at most -max calls at a time (486 for the next one).
//
//	go run ./examples/limitproxy -listen 127.0.0.1:5060 -next 127.0.0.1:5070
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/calllimit"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5060", "UDP address to serve SIP on")
	next := flag.String("next", "127.0.0.1:5070", "host:port every new call goes to")
	maxCalls := flag.Int64("max", 2, "calls a caller (From URI) may have at a time")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *next, *maxCalls, log, nil); err != nil {
		log.Error("limitproxy", "error", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when set, gets the address bound.
func run(ctx context.Context, listen, next string, maxCalls int64, log *slog.Logger, ready chan<- string) error {
	host, p, err := net.SplitHostPort(next)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return err
	}

	// Calls per caller: a node-local profile with a value (a shared one,
	// "caller/s", would count across nodes through Redis).
	set, err := profiles.New(profiles.Config{WithValue: []string{"caller"}}, nil, nil, "limitproxy")
	if err != nil {
		return err
	}
	limiter, err := calllimit.New(calllimit.Options{Set: set, Logger: log,
		Limits: []calllimit.Limit{{Profile: "caller", Key: calllimit.KeyFromURI, Max: maxCalls}}})
	if err != nil {
		return err
	}
	dialogs, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig(), Limiter: limiter, Logger: log})
	if err != nil {
		return err
	}
	defer dialogs.Close()

	router := tm.RouterFunc(func(r *tm.Request) tm.Decision {
		if !r.Initial {
			return tm.RelayTo() // within a call: along its route set
		}
		d := tm.RelayTo(tm.Target{URI: sip.Uri{Scheme: "sip", User: r.Recipient.User, Host: host, Port: port}})
		d.RecordRoute = true
		return d
	})
	proxy, err := tm.New(tm.Options{Config: tm.DefaultConfig(), Router: router, Logger: log,
		Modules: []tm.Module{dialogs.Module()}})
	if err != nil {
		return err
	}
	defer proxy.Close()

	go limiter.Run(ctx) // gives back the counts of ended calls
	addr, err := proxy.Listen("udp", listen, "")
	if err != nil {
		return err
	}
	log.Info("limitproxy serving", "listen", addr.String(), "next", next, "max_calls_per_caller", maxCalls)
	if ready != nil {
		ready <- addr.String()
	}
	<-ctx.Done()
	return nil
}
