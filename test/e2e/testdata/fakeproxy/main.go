// Command fakeproxy stands in for cmd/imsproxy in the harness's own tests:
// it reads --config FILE, serves /healthz, /rpc (core.version) and /metrics
// on mgmt.listen, and exits on SIGTERM/SIGINT. Environment knobs make it
// misbehave so the harness's failure paths can be checked:
//
//	FAKEPROXY_TERM_EXIT=N   exit N on SIGTERM (default 0)
//	FAKEPROXY_IGNORE_TERM=1 ignore SIGTERM
//	FAKEPROXY_EXIT_AT_START=N exit N at once, before serving
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
)

func main() {
	config := flag.String("config", "", "config file")
	flag.Parse()
	if v := os.Getenv("FAKEPROXY_EXIT_AT_START"); v != "" {
		n, _ := strconv.Atoi(v)
		fmt.Println("fakeproxy: exiting at start as asked")
		os.Exit(n)
	}
	data, err := os.ReadFile(*config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	m := regexp.MustCompile(`(?m)^mgmt:\s*\n\s+listen:\s*"?([^"\s]+)"?`).FindSubmatch(data)
	if m == nil {
		fmt.Fprintln(os.Stderr, "fakeproxy: no mgmt.listen in the config")
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", string(m[1]))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE fake_requests_total counter")
		fmt.Fprintln(w, `fake_requests_total{method="INVITE"} 3`)
		fmt.Fprintln(w, "fake_up 1")
	})
	mux.HandleFunc("/rpc", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp := map[string]any{"jsonrpc": "2.0", "id": req.ID}
		if req.Method == "core.version" {
			resp["result"] = map[string]string{"version": "fake"}
		} else {
			resp["error"] = map[string]any{"code": -32601, "message": "Method not found"}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
	go http.Serve(ln, mux)
	fmt.Println("fakeproxy: serving on", ln.Addr())

	sig := make(chan os.Signal, 1)
	if os.Getenv("FAKEPROXY_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
		signal.Notify(sig, syscall.SIGINT)
	} else {
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	}
	<-sig
	n, _ := strconv.Atoi(os.Getenv("FAKEPROXY_TERM_EXIT"))
	fmt.Println("fakeproxy: exiting", n)
	os.Exit(n)
}
