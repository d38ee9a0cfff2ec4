// Command imsproxy is the imsdlg SIP proxy daemon: a transaction-stateful,
// forking proxy with an in-memory registrar, a JSON-RPC management API and
// Prometheus metrics. Run it without flags to use the embedded standalone
// configuration.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/buildinfo"
	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/internal/poolcheck"
	"github.com/imsdlg/imsdlg/internal/routing"
	"github.com/imsdlg/imsdlg/tm"
	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// version is the build's version line: the release version, or the VCS
// revision and time of a build from a git checkout (internal/buildinfo).
func version() string { return buildinfo.Get().String() }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("imsproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration `file` (default: the embedded standalone configuration)")
	check := fs.Bool("check", false, "validate the configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	var overrides Overrides
	fs.Var(&overrides, "set", "override one configuration `key=value` (repeatable), e.g. -set tm.fr_timeout=10")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 1 && fs.Arg(0) == "version" {
		*showVersion = true
	} else if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "imsproxy: unexpected argument %q (the one command is \"version\")\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "imsproxy %s\n", version())
		return 0
	}
	cfg, err := LoadConfig(*configPath, overrides)
	if err != nil {
		fmt.Fprintf(stderr, "imsproxy: %v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintf(stdout, "imsproxy: configuration %s is valid\n", displayPath(*configPath))
		return 0
	}
	log := cfg.Log.NewLogger(stderr)
	bridgeLogs(log)
	cfg.Runtime.apply(log)
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("imsproxy stopped", "error", err)
		return 1
	}
	return 0
}

func displayPath(p string) string {
	if p == "" {
		return "(embedded standalone)"
	}
	return p
}

// serve runs the proxy until ctx ends or SIGTERM/SIGINT arrives, then
// stops it (stopper: drain, grace, last write). Every goroutine it starts
// is one of bg's, waited for before it returns. A second signal cuts the
// drain and the grace short.
func serve(ctx context.Context, cfg *Config, log *slog.Logger) error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	stopping, interrupt := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-sigs:
		}
		close(stopping)
		select {
		case <-sigs:
			close(interrupt)
		case <-ctx.Done():
		}
	}()
	// The management server outlives the stop sequence: /readyz says 503
	// all along, and an operator can watch the dialogs drain.
	mctx, mstop := context.WithCancel(context.Background())
	defer mstop()
	bgctx, bgstop := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	defer func() {
		bgstop()
		bg.Wait()
	}()
	goBG := func(f func(context.Context)) {
		bg.Add(1)
		go func() {
			defer bg.Done()
			f(bgctx)
		}()
	}

	tmc := daemonTM(cfg.TM)
	if poolcheck.Poison() && !testing.Testing() {
		log.Warn("message memory is poisoned when released, never reused (" + poolcheck.EnvPoison + "=1): a test setting, slower")
	}
	var tpo transport.Options
	cfg.TCP.options(&tpo)
	cfg.UDP.options(&tpo)
	if cfg.Log.SIPTrace {
		tpo.Trace = sipTrace(log)
	}

	loc := location.New(location.Options{
		MinExpires:     cfg.Location.MinExpires,
		MaxExpires:     cfg.Location.MaxExpires,
		DefaultExpires: cfg.Location.DefaultExpires,
		MaxContacts:    cfg.Location.MaxContacts,
	})
	for aor, contacts := range cfg.Location.Static {
		if err := loc.AddStatic(aor, contacts); err != nil {
			return fmt.Errorf("location.static: %w", err)
		}
	}
	router, err := buildRouter(cfg, loc, log)
	if err != nil {
		return err
	}

	prof, err := startProfiles(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer prof.Close()
	limiter, err := prof.limiter(cfg, log)
	if err != nil {
		return fmt.Errorf("limits: %w", err)
	}
	db, err := openDialogDB(cfg, prof, log)
	if err != nil {
		return err
	}
	defer db.Close()
	pub, err := startEvents(cfg, prof.node, log)
	if err != nil {
		return err
	}
	// One timer wheel for tm's transactions and the dialogs' timers: its
	// entries live in the transactions and dialogs, so arming costs no
	// allocation. It runs until everything else has stopped.
	clock := wheel.New(10*time.Millisecond, 4096)
	goBG(func(ctx context.Context) { _ = clock.Run(ctx) })
	opts := imsdialog.Options{Config: cfg.dialogConfig(), Logger: log, Limiter: limiter, Clock: clock}
	if db.persister != nil {
		opts.Persister = db.persister
	}
	if pub != nil {
		opts.OnStateChange = pub.onStateChange
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := pub.Close(cctx); err != nil {
				log.Warn("events not all delivered at shutdown", "error", err)
			}
		}()
		log.Info("dialog events enabled", "sinks", cfg.sinkNames())
	}
	dialogs, err := imsdialog.New(opts)
	if err != nil {
		return err
	}
	defer dialogs.Close()
	prof.limitTimeouts(cfg, dialogs, log)
	modules := []tm.Module{dialogs.Module()}
	if len(cfg.Replications) > 0 {
		modules = append(modules, routing.ReplicateModule(cfg.Replications, log))
	}
	proxy, err := tm.New(tm.Options{Config: tmc, Router: router, Logger: log, Transport: tpo, Clock: clock,
		Modules: append(modules, router.Module())})
	if err != nil {
		return err
	}
	defer proxy.Close()
	// Restore before the counts are reconciled (restored dialogs keep
	// theirs) and, when Redis answers, before the listeners open.
	rec := newRecovery(db, prof, dialogs, proxy, 10*cfg.Profiles.CachedbTimeout, log)
	if !rec.step(ctx) {
		log.Warn("starting without what the last run left in Redis; retrying in the background", "error", rec.ready())
		goBG(rec.run)
	}
	goBG(func(ctx context.Context) { prof.set.Run(ctx, cfg.Profiles.RetryPeriod) })
	goBG(limiter.Run)
	if db.persister != nil {
		goBG(db.persister.Run)
	}
	goBG(func(ctx context.Context) { expireLoop(ctx, loc) })
	if tune := cfg.Runtime.headroomTuner(log); tune != nil {
		goBG(tune)
	}
	advertise := cfg.AdvertiseHost
	if advertise != "" && cfg.AdvertisePort > 0 {
		advertise = net.JoinHostPort(cfg.AdvertiseHost, strconv.Itoa(cfg.AdvertisePort))
	}
	for _, l := range cfg.ListenAddrs {
		if _, err := proxy.Listen(l.Network, l.HostPort(), advertise); err != nil {
			return fmt.Errorf("listen %s: %w", l, err)
		}
	}

	reg := prometheus.NewRegistry()
	// go_gc_heap_live_bytes is the live heap of the last GC: memory per
	// call without forcing a collection (README, memory per cps).
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/gc/(heap/live|gomemlimit):bytes$`)})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(proxy.Stats(), proxy.TransportStats(), dialogs.Stats(), prof.set.Stats())
	if db.persister != nil {
		reg.MustRegister(db.persister.Stats())
	}
	if pub != nil {
		reg.MustRegister(pub.Stats())
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imsdlg_location_aors", Help: "Addresses of record with at least one binding.",
	}, func() float64 { return float64(loc.Len()) }))
	bi := buildinfo.Get()
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "imsdlg_build_info", Help: "The running build: always 1, with its version, VCS revision and Go version as labels.",
		ConstLabels: prometheus.Labels{"version": bi.Version, "revision": bi.Revision, "goversion": bi.Go},
	}, func() float64 { return 1 }))

	api := mgmt.New(log, reg, cfg.Mgmt.options()...)
	api.SetReady(func(ctx context.Context) error {
		if err := proxy.Ready(); err != nil {
			return err
		}
		if err := rec.ready(); err != nil {
			return err
		}
		if !cfg.Mgmt.ReadyRequiresRedis {
			return nil
		}
		if err := prof.ready(ctx); err != nil {
			return err
		}
		return db.ready(ctx)
	})
	if cfg.Mgmt.Pprof {
		api.EnablePprof()
	}
	registerMethods(api, proxy, loc)
	registerTransactionMethods(api, proxy)
	registerDialogMethods(api, dialogs, db.stats, prof.memberships)
	db.registerStoreMethods(api, dialogs, proxy)
	registerProfileMethods(api, dialogs, prof.set)
	api.Audit("dlg.terminate_dlg", "dlg.end_dlg", "dlg.profile_end_dlgs", "tm.uac_dlg",
		"dlg.set_timeout", "dlg.set_var", "dlg.push_var", "dlg.set_flag", "dlg.reset_flag", "dlg.send_sequential", "tm.t_reply", "tm.t_cancel",
		"tm.t_uac_cancel", "dlg.restore_db", "dlg.db_sync")

	errc := make(chan error, 1)
	if cfg.Mgmt.Listen != "" {
		ready := make(chan net.Addr, 1)
		go func() { errc <- api.ListenAndServe(mctx, cfg.Mgmt.Listen, ready) }()
		select {
		case <-ready: // the server logs its address itself
		case err := <-errc:
			return fmt.Errorf("mgmt.listen %s: %w", cfg.Mgmt.Listen, err)
		}
	}

	log.Info("imsproxy started", "version", version(), "listen", proxy.Listeners(), "domains", cfg.Domains)

	mgmtDone := cfg.Mgmt.Listen == ""
	select {
	case <-stopping:
	case err := <-errc:
		if err != nil {
			return fmt.Errorf("management API: %w", err)
		}
		mgmtDone = true
		<-stopping
	}
	st := &stopper{cfg: cfg, log: log, proxy: proxy, dialogs: dialogs, db: db, interrupt: interrupt}
	stopErr := st.run()
	if err := proxy.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		log.Warn("closing listeners", "error", err)
	}
	mstop()
	if !mgmtDone {
		<-errc
	}
	if stopErr != nil {
		return stopErr
	}
	log.Info("imsproxy stopped")
	return nil
}

// expireLoop drops expired registrations so memory follows the live set.
func expireLoop(ctx context.Context, loc *location.Store) {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			loc.Expire()
		}
	}
}

func registerMethods(api *mgmt.Server, proxy *tm.Proxy, loc *location.Store) {
	api.Register("core.version", func(context.Context, json.RawMessage) (any, error) {
		bi := buildinfo.Get()
		return map[string]any{"name": "imsdlg", "version": bi.Version, "revision": bi.Revision, "modified": bi.Modified,
			"time": bi.Time, "go": bi.Go}, nil
	})
	api.Register("tm.stats", func(context.Context, json.RawMessage) (any, error) {
		return proxy.Stats().Snapshot(), nil
	})
	api.Register("tm.uac_dlg", func(ctx context.Context, params json.RawMessage) (any, error) {
		return uacDlg(ctx, proxy, params)
	})
	api.Register("ul.dump", func(context.Context, json.RawMessage) (any, error) {
		type binding struct {
			AOR      string  `json:"aor"`
			Contact  string  `json:"contact"`
			Q        float64 `json:"q"`
			Expires  int64   `json:"expires"` // seconds left; 0 = static
			Static   bool    `json:"static"`
			Received string  `json:"received,omitempty"`
		}
		now := time.Now()
		out := []binding{}
		for _, b := range loc.Bindings() {
			e := int64(0)
			if !b.Expires.IsZero() {
				e = int64(b.Expires.Sub(now).Round(time.Second) / time.Second)
			}
			out = append(out, binding{AOR: b.AOR, Contact: b.Contact.String(), Q: b.Q, Expires: e, Static: b.Static, Received: b.Received})
		}
		return out, nil
	})
}

// daemonTM is the tm configuration the daemon runs with: the operator's,
// plus what its code promises. Every module of the daemon copies the
// strings it keeps off a message (the dialog module, dlgout, location,
// profiles, the roles), so the text of received messages is pooled (2 KB
// per call).
func daemonTM(c tm.Config) tm.Config {
	c.ReuseMessageText = true
	return c
}
