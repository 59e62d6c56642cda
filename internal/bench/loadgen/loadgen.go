// Package loadgen is the benchmark's HTTP load generator: a closed loop
// (N workers, each sending the next request when the previous one ended)
// and a fixed-rate open loop (requests start on a schedule whatever the
// server does; latency counts from the scheduled start, so a stalled server
// cannot hide its queue). It keeps connections alive, understands SSE
// (time to the first event, events per stream), and bounds every run in
// time and in count. It only talks to loopback addresses.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is what every request of a run sends.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// Stream reads the response as Server-Sent Events: it records the time
	// to the first event and counts events.
	Stream bool
}

// Config bounds and shapes a run.
type Config struct {
	// Concurrency is the number of closed-loop workers (default 1). In an
	// open loop it is ignored.
	Concurrency int
	// Rate > 0 selects the open loop: Rate requests per second.
	Rate float64
	// MaxInFlight bounds the open loop's outstanding requests; a request
	// due while the bound is reached is counted as Dropped (default 1000).
	MaxInFlight int
	// Duration bounds the measured part of the run (required).
	Duration time.Duration
	// MaxRequests bounds the number of measured requests (default 1,000,000).
	MaxRequests int
	// Warmup runs before the measured part with the same shape; its
	// requests are not counted.
	Warmup time.Duration
	// Timeout bounds one request, body included (default 30s).
	Timeout time.Duration
	// ExpectStatus is the status a successful response has (default 200).
	ExpectStatus int
	// HitHeader, when set, counts responses whose header HitHeader equals
	// HitValue (e.g. X-PROXY-CACHE: hit).
	HitHeader, HitValue string
}

// Summary is a latency distribution, in milliseconds.
type Summary struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// Result is one run's outcome.
type Result struct {
	Requests   int64         `json:"requests"` // completed, successful or not
	Errors     int64         `json:"errors"`   // transport errors and unexpected statuses
	Dropped    int64         `json:"dropped"`  // open loop: not started (in-flight bound)
	Hits       int64         `json:"hits"`
	Status     map[int]int64 `json:"status"`
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Throughput float64       `json:"throughput_rps"` // successful requests per second
	Latency    Summary       `json:"latency"`        // whole response, body read
	FirstEvent Summary       `json:"first_event"`    // streams: time to the first SSE event
	Events     EventCounts   `json:"events"`         // streams: events per stream
}

// EventCounts summarise events per stream ([DONE] included).
type EventCounts struct {
	Min  int     `json:"min"`
	Max  int     `json:"max"`
	Mean float64 `json:"mean"`
}

// NewClient returns a keep-alive client whose idle pool holds conns
// connections per host, so the generator itself never churns connections.
func NewClient(conns int) *http.Client {
	if conns < 16 {
		conns = 16
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// CheckLoopback refuses URLs that are not on a loopback address: the
// generator must never load anything but this machine.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("target %q: %w", raw, err)
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q is not a loopback address", raw)
}

// sample is one finished request.
type sample struct {
	latency    time.Duration
	firstEvent time.Duration // -1: none
	events     int
	status     int
	hit        bool
	err        error
}

// collector accumulates samples; workers add under a lock (cheap next to
// an HTTP round trip).
type collector struct {
	mu        sync.Mutex
	max       int
	latencies []time.Duration
	firsts    []time.Duration
	events    []int
	res       Result
	expect    int
	stream    bool
}

func newCollector(cfg Config, stream bool) *collector {
	return &collector{max: cfg.MaxRequests, expect: cfg.ExpectStatus, stream: stream, res: Result{Status: map[int]int64{}}}
}

// add records s and reports whether the run may continue (count bound).
func (c *collector) add(s sample) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Requests++
	if s.status != 0 {
		c.res.Status[s.status]++
	}
	switch {
	case s.err != nil:
		c.res.Errors++
		if c.res.FirstError == "" {
			c.res.FirstError = s.err.Error()
		}
	case s.status != c.expect:
		c.res.Errors++
		if c.res.FirstError == "" {
			c.res.FirstError = fmt.Sprintf("status %d, want %d", s.status, c.expect)
		}
	default:
		c.latencies = append(c.latencies, s.latency)
		if c.stream {
			if s.firstEvent >= 0 {
				c.firsts = append(c.firsts, s.firstEvent)
			}
			c.events = append(c.events, s.events)
		}
	}
	if s.hit {
		c.res.Hits++
	}
	return int(c.res.Requests) < c.max
}

func (c *collector) result(elapsed time.Duration) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.res
	r.Elapsed = elapsed
	if elapsed > 0 {
		r.Throughput = float64(len(c.latencies)) / elapsed.Seconds()
	}
	r.Latency = Summarize(c.latencies)
	r.FirstEvent = Summarize(c.firsts)
	if len(c.events) > 0 {
		r.Events.Min, r.Events.Max = slices.Min(c.events), slices.Max(c.events)
		sum := 0
		for _, e := range c.events {
			sum += e
		}
		r.Events.Mean = float64(sum) / float64(len(c.events))
	}
	return r
}

// Summarize computes the distribution of ds (nearest-rank percentiles).
func Summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Summary{
		N: len(s), Mean: ms(sum) / float64(len(s)),
		P50: ms(Percentile(s, 50)), P90: ms(Percentile(s, 90)), P99: ms(Percentile(s, 99)), Max: ms(s[len(s)-1]),
	}
}

// Percentile returns the nearest-rank p-th percentile of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted)) + 0.999999999)
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func (cfg *Config) defaults() error {
	if cfg.Duration <= 0 {
		return errors.New("loadgen: Duration is required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 1000
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 1_000_000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.ExpectStatus == 0 {
		cfg.ExpectStatus = http.StatusOK
	}
	return nil
}

// Run performs a warm-up (when configured) and a measured run of req
// against client, in a closed loop or, when cfg.Rate > 0, an open loop.
func Run(ctx context.Context, client *http.Client, req Request, cfg Config) (Result, error) {
	if err := cfg.defaults(); err != nil {
		return Result{}, err
	}
	if err := CheckLoopback(req.URL); err != nil {
		return Result{}, err
	}
	if cfg.Warmup > 0 {
		w := cfg
		w.Duration, w.Warmup = cfg.Warmup, 0
		if _, err := run(ctx, client, req, w); err != nil {
			return Result{}, err
		}
	}
	return run(ctx, client, req, cfg)
}

func run(ctx context.Context, client *http.Client, req Request, cfg Config) (Result, error) {
	col := newCollector(cfg, req.Stream)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	if cfg.Rate > 0 {
		openLoop(ctx, client, req, cfg, col)
	} else {
		closedLoop(ctx, client, req, cfg, col)
	}
	elapsed := time.Since(start)
	return col.result(elapsed), nil
}

func closedLoop(ctx context.Context, client *http.Client, req Request, cfg Config, col *collector) {
	var wg sync.WaitGroup
	var issued atomic.Int64
	for range cfg.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil && issued.Add(1) <= int64(cfg.MaxRequests) {
				// A request started before the end of the run finishes (within
				// cfg.Timeout): cutting it would close connections and count
				// the cut as churn of whatever it went through.
				s := Do(context.WithoutCancel(ctx), client, req, cfg, time.Now())
				col.add(s.sample)
			}
		})
	}
	wg.Wait()
}

func openLoop(ctx context.Context, client *http.Client, req Request, cfg Config, col *collector) {
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	sem := make(chan struct{}, cfg.MaxInFlight)
	var wg sync.WaitGroup
	var dropped int64
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var stop atomic.Bool
	for i := 0; i < cfg.MaxRequests && !stop.Load(); i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case sem <- struct{}{}:
		default:
			dropped++
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			// A request started before the end of the run may finish after
			// it: it keeps its own bound (cfg.Timeout), not the run's.
			s := Do(context.WithoutCancel(ctx), client, req, cfg, due)
			if !col.add(s.sample) {
				stop.Store(true)
			}
		})
	}
	wg.Wait()
	col.mu.Lock()
	col.res.Dropped = dropped
	col.mu.Unlock()
}

// Outcome is one request's measurement.
type Outcome struct{ sample }

// Latency is the time from the scheduled start to the end of the body.
func (o Outcome) Latency() time.Duration { return o.latency }

// FirstEvent is the time to the first complete SSE event (-1: none).
func (o Outcome) FirstEvent() time.Duration { return o.firstEvent }

// Events is the number of SSE events read.
func (o Outcome) Events() int { return o.events }

// Status is the response status (0 when no response arrived).
func (o Outcome) Status() int { return o.status }

// Err is the transport or read error, if any.
func (o Outcome) Err() error { return o.err }

// Do sends one request and reads the whole response. Latencies count from
// scheduled (the intended start in an open loop, now in a closed one).
func Do(ctx context.Context, client *http.Client, req Request, cfg Config, scheduled time.Time) Outcome {
	return DoNotify(ctx, client, req, cfg, scheduled, nil)
}

// DoNotify is Do with a callback run once, when the first SSE event has
// been read (streams only).
func DoNotify(ctx context.Context, client *http.Client, req Request, cfg Config, scheduled time.Time, onFirst func()) Outcome {
	s := sample{firstEvent: -1}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if req.Body != nil {
		body = bytes.NewReader(req.Body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, req.URL, body)
	if err != nil {
		s.err = err
		return Outcome{s}
	}
	for k, vs := range req.Header {
		hr.Header[k] = vs
	}
	resp, err := client.Do(hr)
	if err != nil {
		s.err = err
		return Outcome{s}
	}
	defer resp.Body.Close()
	s.status = resp.StatusCode
	if cfg.HitHeader != "" && resp.Header.Get(cfg.HitHeader) == cfg.HitValue {
		s.hit = true
	}
	if req.Stream && resp.StatusCode == http.StatusOK {
		s.events, err = ReadEvents(resp.Body, func() {
			s.firstEvent = time.Since(scheduled)
			if onFirst != nil {
				onFirst()
			}
		})
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	s.latency = time.Since(scheduled)
	if err != nil {
		s.err = fmt.Errorf("read body: %w", err)
	}
	return Outcome{s}
}

// ReadEvents reads a Server-Sent Events body to its end and returns the
// number of events (a blank line ends an event that had at least one
// field; comment lines such as ": keep-alive" are not events). first is
// called when the first event is complete.
func ReadEvents(r io.Reader, first func()) (int, error) {
	br := bufio.NewReaderSize(r, 16<<10)
	events := 0
	inEvent := false
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// An over-long line: consume the rest of it.
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			inEvent = true
			if err != nil {
				return events, finalErr(err)
			}
			continue
		}
		trimmed := bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) > 0 && len(trimmed) == 0 && err == nil:
			if inEvent {
				events++
				inEvent = false
				if events == 1 && first != nil {
					first()
				}
			}
		case len(trimmed) > 0 && trimmed[0] == ':':
			// comment
		case len(trimmed) > 0:
			inEvent = true
		}
		if err != nil {
			return events, finalErr(err)
		}
	}
}

func finalErr(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// StreamsResult is the outcome of Streams.
type StreamsResult struct {
	Streams    int         `json:"streams"`
	Started    int         `json:"started"` // streams whose first event arrived before the ramp bound
	Errors     int         `json:"errors"`
	FirstError string      `json:"first_error,omitempty"`
	Ramp       Summary     `json:"first_event"` // time to the first event, from the start of the ramp
	Events     EventCounts `json:"events"`
}

// Streams opens n streams at once and, when every one of them has
// delivered its first event (or ramp has passed), calls open with the
// number started — the moment to measure what n concurrent streams cost —
// then reads every stream to its end.
func Streams(ctx context.Context, client *http.Client, req Request, cfg Config, n int, ramp time.Duration, open func(started int)) (StreamsResult, error) {
	if err := CheckLoopback(req.URL); err != nil {
		return StreamsResult{}, err
	}
	if !req.Stream {
		return StreamsResult{}, errors.New("loadgen: Streams needs a streaming request")
	}
	if cfg.ExpectStatus == 0 {
		cfg.ExpectStatus = http.StatusOK
	}
	var started atomic.Int64
	all := make(chan struct{})
	var wg sync.WaitGroup
	outcomes := make([]Outcome, n)
	begin := time.Now()
	for i := range n {
		wg.Go(func() {
			outcomes[i] = DoNotify(ctx, client, req, cfg, begin, func() {
				if started.Add(1) == int64(n) {
					close(all)
				}
			})
		})
	}
	t := time.NewTimer(ramp)
	select {
	case <-all:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	if open != nil {
		open(int(started.Load()))
	}
	wg.Wait()
	res := StreamsResult{Streams: n, Started: int(started.Load())}
	var firsts []time.Duration
	var events []int
	for _, o := range outcomes {
		switch {
		case o.err != nil:
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = o.err.Error()
			}
			continue
		case o.status != cfg.ExpectStatus:
			res.Errors++
			if res.FirstError == "" {
				res.FirstError = fmt.Sprintf("status %d, want %d", o.status, cfg.ExpectStatus)
			}
			continue
		}
		if o.firstEvent >= 0 {
			firsts = append(firsts, o.firstEvent)
		}
		events = append(events, o.events)
	}
	res.Ramp = Summarize(firsts)
	if len(events) > 0 {
		res.Events.Min, res.Events.Max = slices.Min(events), slices.Max(events)
		sum := 0
		for _, e := range events {
			sum += e
		}
		res.Events.Mean = float64(sum) / float64(len(events))
	}
	return res, nil
}
