package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadEvents(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want int
	}{
		{"chat stream", "data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n", 3},
		{"crlf", "data: x\r\n\r\ndata: y\r\n\r\n", 2},
		{"named events", "event: response.created\ndata: {}\n\nevent: response.completed\ndata: {}\n\n", 2},
		{"comments are not events", ": keep-alive\n\ndata: x\n\n: keep-alive\n\n", 1},
		{"multi-line data is one event", "data: a\ndata: b\n\n", 1},
		{"unterminated last event is not counted", "data: a\n\ndata: b\n", 1},
		{"empty", "", 0},
		{"long line", "data: " + strings.Repeat("x", 40<<10) + "\n\ndata: y\n\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			firsts := 0
			got, err := ReadEvents(strings.NewReader(tt.in), func() { firsts++ })
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("events = %d, want %d", got, tt.want)
			}
			wantFirst := 0
			if tt.want > 0 {
				wantFirst = 1
			}
			if firsts != wantFirst {
				t.Errorf("first called %d times, want %d", firsts, wantFirst)
			}
		})
	}
}

// A reader that fails after its data: the error must surface.
type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestReadEventsError(t *testing.T) {
	n, err := ReadEvents(&failingReader{strings.NewReader("data: a\n\ndata: b")}, nil)
	if err == nil || n != 1 {
		t.Errorf("got %d, %v; want 1 event and an error", n, err)
	}
}

func TestPercentileAndSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	if s.N != 100 || s.P50 != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 || s.Mean != 50.5 {
		t.Errorf("summary %+v", s)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Summarize sorted its input in place")
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Errorf("empty summary %+v", got)
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("single percentile %v", got)
	}
}

func TestCheckLoopback(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080/x", "http://localhost/", "http://[::1]:1/"} {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://api.openai.com/", "http://10.0.0.1/", "http://0.0.0.0:80/", "::bad"} {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("%s: want an error", u)
		}
	}
	if _, err := Run(context.Background(), NewClient(1), Request{Method: "GET", URL: "http://192.0.2.1/"}, Config{Duration: time.Second}); err == nil {
		t.Error("Run against a non-loopback address: want an error")
	}
}

// counter is a server counting requests and connections.
type counter struct {
	requests atomic.Int64
	conns    atomic.Int64
}

func newServer(t *testing.T, h func(http.ResponseWriter, *http.Request)) (*httptest.Server, *counter) {
	t.Helper()
	c := &counter{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		h(w, r)
	}))
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, c
}

func TestClosedLoopCounts(t *testing.T) {
	ts, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "1" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Cache", "hit")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	client := NewClient(4)
	req := Request{Method: http.MethodPost, URL: ts.URL, Header: http.Header{"X-Test": {"1"}}, Body: []byte(`{}`)}
	res, err := Run(context.Background(), client, req, Config{Concurrency: 4, Duration: time.Minute, MaxRequests: 200, HitHeader: "X-Cache", HitValue: "hit"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || c.requests.Load() != 200 {
		t.Errorf("requests: generator %d, server %d; want 200 each", res.Requests, c.requests.Load())
	}
	if res.Errors != 0 || res.Hits != 200 || res.Status[200] != 200 || res.Latency.N != 200 {
		t.Errorf("result %+v", res)
	}
	if res.Throughput <= 0 || res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
		t.Errorf("implausible figures %+v", res)
	}
	// Without keep-alive every request dials (200 connections). With it, a
	// worker may still dial once while another's connection is on its way
	// back to the pool, so a few over 4 happen under load (5 was seen under
	// -race); 2x the workers bounds that race and still fails without reuse.
	if n := c.conns.Load(); n > 8 {
		t.Errorf("%d connections for 4 workers and 200 requests: keep-alive not working", n)
	}
}

func TestUnexpectedStatusIsAnError(t *testing.T) {
	ts, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	res, err := Run(context.Background(), NewClient(2), Request{Method: "GET", URL: ts.URL}, Config{Concurrency: 2, Duration: time.Minute, MaxRequests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 10 || res.Status[401] != 10 || res.FirstError == "" {
		t.Errorf("result %+v", res)
	}
	res, err = Run(context.Background(), NewClient(2), Request{Method: "GET", URL: ts.URL}, Config{Concurrency: 2, Duration: time.Minute, MaxRequests: 10, ExpectStatus: 401})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Latency.N != 10 {
		t.Errorf("expected 401s counted as errors: %+v", res)
	}
}

func TestOpenLoopCounts(t *testing.T) {
	ts, c := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	// 1000/s bounded to 50 requests: the count bound ends the run.
	res, err := Run(context.Background(), NewClient(8), Request{Method: "GET", URL: ts.URL}, Config{Rate: 1000, Duration: time.Minute, MaxRequests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests+res.Dropped != 50 || c.requests.Load() != res.Requests {
		t.Errorf("generator %d (+%d dropped), server %d; want 50 in all", res.Requests, res.Dropped, c.requests.Load())
	}
}

func TestOpenLoopDropsBeyondInFlight(t *testing.T) {
	// The server holds every request until the client gives up (after 2s,
	// far beyond the 20ms the schedule of 40 requests at 2000/s takes):
	// two requests are in flight, the other 38 are dropped.
	ts, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	res, err := Run(context.Background(), NewClient(4), Request{Method: "GET", URL: ts.URL}, Config{Rate: 2000, Duration: time.Minute, MaxRequests: 40, MaxInFlight: 2, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.Errors != 2 || res.Dropped != 38 {
		t.Errorf("requests %d errors %d dropped %d; want 2, 2 and 38", res.Requests, res.Errors, res.Dropped)
	}
}

func sseHandler(events int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			fmt.Fprintf(w, "data: {\"i\":%d}\n\n", i)
			_ = rc.Flush()
		}
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}
}

func TestStreamsClosedLoop(t *testing.T) {
	ts, _ := newServer(t, sseHandler(50))
	res, err := Run(context.Background(), NewClient(2), Request{Method: "POST", URL: ts.URL, Stream: true}, Config{Concurrency: 2, Duration: time.Minute, MaxRequests: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Events.Min != 51 || res.Events.Max != 51 || res.FirstEvent.N != 20 {
		t.Errorf("result %+v", res)
	}
	if res.FirstEvent.P50 > res.Latency.P50 {
		t.Errorf("first event after the end of the stream: %+v", res)
	}
}

func TestConcurrentStreams(t *testing.T) {
	// Each stream sends one event, then waits for the release: all streams
	// are open at once when open is called.
	release := make(chan struct{})
	ts, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		_ = http.NewResponseController(w).Flush()
		<-release
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	})
	var atOpen int
	res, err := Streams(context.Background(), NewClient(64), Request{Method: "POST", URL: ts.URL, Stream: true}, Config{}, 50, time.Minute, func(started int) {
		atOpen = started
		close(release)
	})
	if err != nil {
		t.Fatal(err)
	}
	if atOpen != 50 || res.Started != 50 || res.Errors != 0 || res.Events.Min != 2 {
		t.Errorf("open saw %d; result %+v", atOpen, res)
	}
}
