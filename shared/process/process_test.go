package process

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

func serveTest(t *testing.T, h http.Handler, o Options) (base string, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc, stopped := make(chan error, 1), make(chan struct{})
	go func() { errc <- Serve(ctx, slog.New(slog.DiscardHandler), ln, h, o); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return "http://" + ln.Addr().String(), cancel, errc
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestHealthPaths: every liveness and readiness path answers, readiness
// follows the checks, other paths reach the handler.
func TestHealthPaths(t *testing.T) {
	t.Parallel()
	var down atomic.Bool
	checks := []web.Check{{Name: "database", Check: func(context.Context) error {
		if down.Load() {
			return context.DeadlineExceeded
		}
		return nil
	}}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	base, _, _ := serveTest(t, h, Options{ShutdownGrace: time.Second, Checks: checks})
	tests := []struct {
		path string
		want int
	}{
		{"/_/health", 200}, {"/healthz", 200}, {"/health", 200}, {"/live", 200},
		{"/_/ready", 200}, {"/ready", 200},
		{"/v1/models", http.StatusTeapot},
	}
	for _, tt := range tests {
		if got := get(t, base+tt.path); got != tt.want {
			t.Errorf("GET %s = %d, want %d", tt.path, got, tt.want)
		}
	}
	down.Store(true)
	if got := get(t, base+"/ready"); got != http.StatusServiceUnavailable {
		t.Errorf("GET /ready with the database down = %d, want 503", got)
	}
	if got := get(t, base+"/live"); got != http.StatusOK {
		t.Errorf("GET /live with the database down = %d, want 200 (liveness is the process)", got)
	}
}

// TestDrain: when the context ends, a request in flight finishes, new
// connections are refused, and Serve returns once the request is done.
func TestDrain(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	base, cancel, done := serveTest(t, h, Options{ShutdownGrace: 10 * time.Second})
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			body <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		body <- string(b)
	}()
	<-started
	cancel()
	// The listener closes: a new connection is refused while the request
	// is still in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", base[len("http://"):], time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections after its context ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if got := <-body; got != "finished" {
		t.Fatalf("in-flight request got %q, want it finished", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestDrainGraceBound: a request that outlives ShutdownGrace is cut off and
// Serve returns.
func TestDrainGraceBound(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	base, cancel, done := serveTest(t, h, Options{ShutdownGrace: 100 * time.Millisecond})
	go func() { _, _ = http.Get(base + "/forever") }()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the grace period")
	}
}

// TestFunctionAddr: LISTEN_ADDR when set, else :$PORT, else :8080.
func TestFunctionAddr(t *testing.T) {
	for _, tt := range []struct {
		s    config.Server
		want string
	}{
		{config.Server{}, ":8080"},
		{config.Server{Port: "9000"}, ":9000"},
		{config.Server{ListenAddr: "127.0.0.1:7000", Port: "9000"}, "127.0.0.1:7000"},
	} {
		if got := FunctionAddr(tt.s); got != tt.want {
			t.Errorf("FunctionAddr(%+v) = %q, want %q", tt.s, got, tt.want)
		}
	}
}
