package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server bound to 127.0.0.1.
type Server struct {
	Addr string // host:port
	Port int

	path  string
	args  []string
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
	log   *strings.Builder
	logMu *sync.Mutex
}

// Need returns the path of redis-server; it skips t when it is absent,
// or fails it under CI.
func Need(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found and CI is set (scripts/test.sh installs it): %v", err)
		}
		t.Skip("redis-server not installed (scripts/test.sh installs it)")
	}
	return path
}

// Options shape the server.
type Options struct {
	// Persistent keeps the data across Stop/Start (append-only file in
	// Dir, fsync on every write).
	Persistent bool
	// Dir is the working directory (default: a t.TempDir()).
	Dir string
	// Extra arguments for redis-server, e.g. "--cluster-enabled", "yes".
	Extra []string
}

// Start starts a redis-server on a free loopback port; it is stopped when
// the test ends. It fails the test when the server does not come up.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s, err := StartE(t, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// StartE is Start returning the error; the caller stops the server.
func StartE(t testing.TB, opts Options) (*Server, error) {
	path := Need(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	var lastErr error
	// The free port may be taken again before redis-server binds it: try a
	// few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--dir", opts.Dir,
			"--save", "", "--loglevel", "notice", "--protected-mode", "no"}
		if opts.Persistent {
			args = append(args, "--appendonly", "yes", "--appendfsync", "always")
		} else {
			args = append(args, "--appendonly", "no")
		}
		args = append(args, opts.Extra...)
		s := &Server{Addr: fmt.Sprintf("127.0.0.1:%d", port), Port: port, path: path, args: args}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// URL is the cachedb_url / db_url of the server, database 0.
func (s *Server) URL() string { return "redis://" + s.Addr + "/0" }

// Client opens a client to the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// FreePort finds a free loopback TCP port (for a test that needs an
// address where no Redis listens); it may be taken again before use.
func FreePort() (int, error) { return freePort() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	cmd := exec.Command(s.path, s.args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	ready := make(chan struct{})
	log := &strings.Builder{}
	logMu := &sync.Mutex{}
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if !signalled && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.log, s.logMu = cmd, done, log, logMu
	s.mu.Unlock()
	select {
	case <-ready:
	case <-done:
		logMu.Lock()
		defer logMu.Unlock()
		return fmt.Errorf("redis-server on %s exited: %s", s.Addr, log.String())
	case <-time.After(10 * time.Second):
		s.Kill()
		return fmt.Errorf("redis-server on %s not ready after 10s", s.Addr)
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		s.Kill()
		return fmt.Errorf("PING redis-server on %s: %w", s.Addr, err)
	}
	return nil
}

// Stop ends the server gracefully (SIGTERM: a persistent server keeps its
// data) and waits for it.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill ends the server at once (SIGKILL) and waits for it.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts a stopped server again on the same port and directory.
func (s *Server) Restart() error {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		default:
			return errors.New("redistest: Restart of a running server")
		}
	}
	return s.start()
}

// Log is what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	logMu, log := s.logMu, s.log
	s.mu.Unlock()
	if log == nil {
		return ""
	}
	logMu.Lock()
	defer logMu.Unlock()
	return log.String()
}

// Pause stops the server's process (SIGSTOP) without closing its sockets:
// clients connect and send, and nothing answers, as with a stalled Redis.
// Resume lets it run again; Kill works on a paused server.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT): it then serves what was
// sent to it while it was paused.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(sig)
	}
}
