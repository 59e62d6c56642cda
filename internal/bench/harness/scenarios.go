package harness

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/bench/loadgen"
	"github.com/llm-proxy/llm-proxy/internal/bench/procstat"
)

// Scenario names.
const (
	ScSlowStreams     = "slow-streams"
	ScChat            = "chat"
	ScRate            = "rate"
	ScStream          = "stream"
	ScCache           = "cache"
	ScRejectMalformed = "reject-malformed"
	ScRejectUnknown   = "reject-unknown"
)

// AllScenarios lists every scenario in the order a round runs them. Slow
// streams come first, on freshly started processes, so that memory already
// grown by other scenarios does not hide what the streams cost.
var AllScenarios = []string{ScSlowStreams, ScChat, ScRate, ScStream, ScCache, ScRejectMalformed, ScRejectUnknown}

var scenarioTitles = map[string]string{
	ScChat:            "Non-streamed chat, closed loop",
	ScRate:            "Fixed rate (latency added)",
	ScStream:          "Streams (time to first event)",
	ScSlowStreams:     "Concurrent slow streams (memory per stream)",
	ScCache:           "Cache hits (client opts in: Cache-Control: public, max-age=60)",
	ScRejectMalformed: "Rejected tokens: malformed",
	ScRejectUnknown:   "Rejected tokens: unknown, well-formed",
}

// Measurement is one scenario on one target in one round (or, in the
// report's medians, the median over rounds of each figure).
type Measurement struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`
	Round    int    `json:"round"` // 0 for medians

	Requests   float64 `json:"requests"`
	Errors     float64 `json:"errors"`
	Dropped    float64 `json:"dropped,omitempty"`
	Hits       float64 `json:"hits,omitempty"`
	Throughput float64 `json:"throughput_rps"`
	P50        float64 `json:"p50_ms"`
	P99        float64 `json:"p99_ms"`
	FirstP50   float64 `json:"first_event_p50_ms,omitempty"`
	FirstP99   float64 `json:"first_event_p99_ms,omitempty"`
	EventsMin  float64 `json:"events_min,omitempty"`
	EventsMax  float64 `json:"events_max,omitempty"`
	CPUPerReq  float64 `json:"cpu_us_per_request"`
	UpstreamRq float64 `json:"upstream_requests"`
	NewConns1k float64 `json:"new_upstream_conns_per_1k"`

	Streams      float64 `json:"streams,omitempty"`
	Started      float64 `json:"streams_started,omitempty"`
	RSSBeforeKiB float64 `json:"rss_before_kib,omitempty"`
	RSSOpenKiB   float64 `json:"rss_open_kib,omitempty"`
	KiBPerStream float64 `json:"kib_per_stream,omitempty"`
	PeakRSSKiB   float64 `json:"peak_rss_kib,omitempty"`

	FirstError string `json:"first_error,omitempty"`
}

const chatBody = `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hello in one short sentence."}]}`

const cacheBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"What is the capital of France? (cached)"}]}`

const streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count to fifty."}]}`

func (e *env) request(t *target, body, bearer string, stream bool, extra http.Header) loadgen.Request {
	h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + bearer}}
	for k, v := range extra {
		h[k] = v
	}
	return loadgen.Request{Method: http.MethodPost, URL: t.url + "/v1/chat/completions", Header: h, Body: []byte(body), Stream: stream}
}

// counters snapshots the target's CPU and the upstream's counters around
// the measured part of a run.
type counters struct {
	cpu   time.Duration
	reqs  int64
	conns int64
}

func (e *env) snapshot(ctx context.Context, t *target) (counters, error) {
	cpu, err := procstat.CPU(t.pid(e))
	if err != nil {
		return counters{}, err
	}
	st, err := e.upstreamStats(ctx)
	if err != nil {
		return counters{}, err
	}
	return counters{cpu: cpu, reqs: st.Requests, conns: st.Connections}, nil
}

func (m *Measurement) fill(before, after counters, completed int64) {
	if completed > 0 {
		m.CPUPerReq = float64((after.cpu - before.cpu).Microseconds()) / float64(completed)
	}
	m.UpstreamRq = float64(after.reqs - before.reqs)
	if m.UpstreamRq > 0 {
		m.NewConns1k = float64(after.conns-before.conns) / m.UpstreamRq * 1000
	}
}

func fromResult(m *Measurement, r loadgen.Result) {
	m.Requests, m.Errors, m.Dropped, m.Hits = float64(r.Requests), float64(r.Errors), float64(r.Dropped), float64(r.Hits)
	m.Throughput, m.P50, m.P99 = r.Throughput, r.Latency.P50, r.Latency.P99
	m.FirstP50, m.FirstP99 = r.FirstEvent.P50, r.FirstEvent.P99
	m.EventsMin, m.EventsMax = float64(r.Events.Min), float64(r.Events.Max)
	m.FirstError = r.FirstError
}

// load runs a warm-up, then the measured run between two snapshots.
func (e *env) load(ctx context.Context, client *http.Client, t *target, req loadgen.Request, cfg loadgen.Config, m *Measurement) error {
	if e.o.Warmup > 0 {
		w := cfg
		w.Duration, w.Warmup = e.o.Warmup, 0
		if _, err := loadgen.Run(ctx, client, req, w); err != nil {
			return err
		}
	}
	before, err := e.snapshot(ctx, t)
	if err != nil {
		return err
	}
	if e.o.ProfileDir != "" { // (a) is the upstream process
		stop := perfRecord(t.pid(e), filepath.Join(e.o.ProfileDir, fmt.Sprintf("perf-%s-%s-%d.data", t.name, m.Scenario, e.roundNo)), e.o.Log)
		defer stop()
	}
	res, err := loadgen.Run(ctx, client, req, cfg)
	if err != nil {
		return err
	}
	after, err := e.snapshot(ctx, t)
	if err != nil {
		return err
	}
	fromResult(m, res)
	m.fill(before, after, res.Requests)
	return nil
}

// runScenario measures scenario sc on target t.
func (e *env) runScenario(ctx context.Context, sc string, t *target, client *http.Client) (Measurement, error) {
	m := Measurement{Scenario: sc, Target: t.name}
	o := e.o
	switch sc {
	case ScChat:
		err := e.load(ctx, client, t, e.request(t, chatBody, t.key, false, nil),
			loadgen.Config{Concurrency: o.Concurrency, Duration: o.Duration}, &m)
		return m, err
	case ScRate:
		err := e.load(ctx, client, t, e.request(t, chatBody, t.key, false, nil),
			loadgen.Config{Rate: o.Rate, Duration: o.Duration, MaxInFlight: 1000}, &m)
		return m, err
	case ScStream:
		err := e.load(ctx, client, t, e.request(t, streamBody, t.key, true, nil),
			loadgen.Config{Rate: o.StreamRate, Duration: o.streamRun(), MaxInFlight: 1000}, &m)
		return m, err
	case ScCache:
		req := e.request(t, cacheBody, t.key, false, http.Header{"Cache-Control": {"public, max-age=60"}})
		// One request stores the answer; the measured ones are hits.
		if out := loadgen.Do(ctx, client, req, loadgen.Config{}, time.Now()); out.Err() != nil || out.Status() != http.StatusOK {
			return m, fmt.Errorf("prime the cache: status %d, %v", out.Status(), out.Err())
		}
		err := e.load(ctx, client, t, req,
			loadgen.Config{Concurrency: o.Concurrency, Duration: o.Duration, HitHeader: "X-Proxy-Cache", HitValue: "hit"}, &m)
		return m, err
	case ScRejectMalformed:
		err := e.load(ctx, client, t, e.request(t, chatBody, "not-a-token", false, nil),
			loadgen.Config{Concurrency: o.Concurrency, Duration: o.Duration, ExpectStatus: http.StatusUnauthorized}, &m)
		return m, err
	case ScRejectUnknown:
		err := e.load(ctx, client, t, e.request(t, chatBody, e.unknownToken, false, nil),
			loadgen.Config{Concurrency: o.Concurrency, Duration: o.Duration, ExpectStatus: http.StatusUnauthorized}, &m)
		return m, err
	case ScSlowStreams:
		return e.slowStreams(ctx, t, client)
	}
	return m, fmt.Errorf("unknown scenario %q", sc)
}

// slowStreams opens o.SlowStreams streams paced by the upstream and
// measures the target's resident memory while all of them are open.
func (e *env) slowStreams(ctx context.Context, t *target, client *http.Client) (Measurement, error) {
	m := Measurement{Scenario: ScSlowStreams, Target: t.name}
	req := e.request(t, streamBody, t.key, true, nil)
	// A few plain streams first: lazily built parts (tokenizer, pools) are
	// not stream costs.
	for range 3 {
		if out := loadgen.Do(ctx, client, req, loadgen.Config{}, time.Now()); out.Err() != nil || out.Status() != http.StatusOK {
			return m, fmt.Errorf("warm-up stream: status %d, %v", out.Status(), out.Err())
		}
	}
	pid := t.pid(e)
	// Work the process does in the background after its start (token
	// encodings loading, pools filling) is not a cost of the streams.
	if !settle(ctx, pid) {
		fmt.Fprintf(e.o.Log, "  %s: still busy after %s; measuring anyway\n", t.name, settleLimit)
	}
	if err := e.setStreamDelay(ctx, e.o.SlowDelay); err != nil {
		return m, err
	}
	defer func() { _ = e.setStreamDelay(context.WithoutCancel(ctx), 0) }()
	before, err := procstat.Memory(pid)
	if err != nil {
		return m, err
	}
	var open procstat.Mem
	var openErr error
	res, err := loadgen.Streams(ctx, client, req, loadgen.Config{Timeout: 2 * time.Minute}, e.o.SlowStreams, e.o.SlowRamp, func(int) {
		open, openErr = procstat.Memory(pid)
	})
	if err != nil {
		return m, err
	}
	if openErr != nil {
		return m, openErr
	}
	m.Streams, m.Started = float64(res.Streams), float64(res.Started)
	m.Errors, m.FirstError = float64(res.Errors), res.FirstError
	m.Requests = float64(res.Streams)
	m.FirstP50, m.FirstP99 = res.Ramp.P50, res.Ramp.P99
	m.EventsMin, m.EventsMax = float64(res.Events.Min), float64(res.Events.Max)
	m.RSSBeforeKiB, m.RSSOpenKiB = float64(before.RSS>>10), float64(open.RSS>>10)
	if res.Started > 0 {
		m.KiBPerStream = float64(open.RSS-before.RSS) / 1024 / float64(res.Started)
	}
	return m, nil
}

// settleLimit bounds how long settle waits.
const settleLimit = 15 * time.Second

// settle waits until the process is idle: at most one 10 ms tick of CPU
// time (the resolution of /proc) and resident memory within 256 KiB over a
// quarter second. It reports false if that did not happen within settleLimit (or
// the process could not be read).
func settle(ctx context.Context, pid int) bool {
	const window = 250 * time.Millisecond
	prev, err := sampleIdle(pid)
	if err != nil {
		return false
	}
	for deadline := time.Now().Add(settleLimit); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(window):
		}
		cur, err := sampleIdle(pid)
		if err != nil {
			return false
		}
		grew := cur.rss - prev.rss
		if cur.cpu-prev.cpu <= 10*time.Millisecond && grew < 256<<10 && grew > -256<<10 {
			return true
		}
		prev = cur
	}
	return false
}

// idleSample is what settle compares between two readings.
type idleSample struct {
	cpu time.Duration
	rss int64
}

func sampleIdle(pid int) (idleSample, error) {
	cpu, err := procstat.CPU(pid)
	if err != nil {
		return idleSample{}, err
	}
	mem, err := procstat.Memory(pid)
	if err != nil {
		return idleSample{}, err
	}
	return idleSample{cpu: cpu, rss: mem.RSS}, nil
}
