package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func sampleInfo(id string) *llmproxy.RequestInfo {
	return &llmproxy.RequestInfo{
		RequestID: id, ClientRequestID: "client-1", Method: "POST", Path: "/v1/chat/completions",
		TokenID: "tok_1", ProjectID: "prj_1", Model: "gpt-4o-mini", Status: 200, CacheStatus: llmproxy.CacheMiss,
		Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), TimeToFirstByte: 120 * time.Millisecond, Duration: 450 * time.Millisecond,
		UpstreamLatency:     100 * time.Millisecond,
		Usage:               llmproxy.Usage{PromptTokens: 10, CompletionTokens: 5, TotalTokens: 15, Source: llmproxy.UsageReported},
		RequestBody:         []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`),
		ResponseBody:        []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello"}}]}`),
		ResponseContentType: "application/json",
	}
}

func TestNamingRules(t *testing.T) {
	ext := regexp.MustCompile(`^[a-z][a-z0-9]{0,19}$`)
	for _, name := range Extensions {
		if !ext.MatchString(name) || name == "data" {
			t.Errorf("extension %q breaks the CloudEvents naming rules", name)
		}
	}
	typ := regexp.MustCompile(`^io\.llmproxy\.[a-z_]+(\.[a-z_]+)+\.v[0-9]+$`)
	for _, ty := range Types {
		if !typ.MatchString(ty) || !strings.HasPrefix(ty, TypePrefix) {
			t.Errorf("type %q must be reverse-DNS and versioned", ty)
		}
	}
	// The events we build only use the declared extensions.
	ev, err := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo("r1"), true))
	if err != nil {
		t.Fatal(err)
	}
	for name := range ev.Extensions() {
		if !ext.MatchString(name) {
			t.Errorf("event carries extension %q", name)
		}
	}
}

func TestRequestCompletedEvent(t *testing.T) {
	ev, err := NewRequestCompletedEvent("/llmproxy/functions/proxy", BuildRequestCompleted(sampleInfo("req-1"), true))
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatal(err)
	}
	if ev.ID() != "req-1" || ev.Subject() != "prj_1" || ev.Type() != TypeRequestCompleted || ev.Source() != "/llmproxy/functions/proxy" {
		t.Fatalf("attributes: %s", ev)
	}
	for k, want := range map[string]string{ExtProjectID: "prj_1", ExtTokenID: "tok_1", ExtModel: "gpt-4o-mini"} {
		if got := fmt.Sprint(ev.Extensions()[k]); got != want {
			t.Errorf("extension %s = %q, want %q", k, got, want)
		}
	}
	var d RequestCompleted
	if err := json.Unmarshal(ev.Data(), &d); err != nil {
		t.Fatal(err)
	}
	if d.LatencyMS != 450 || d.TTFBMS != 120 || d.Usage.TotalTokens != 15 || d.Usage.Source != llmproxy.UsageReported || d.ClientRequestID != "client-1" {
		t.Fatalf("data: %+v", d)
	}
	if d.Request == nil || !strings.Contains(string(d.Request.JSON), `"messages"`) || d.Request.Base64 != nil {
		t.Fatalf("request body should be embedded JSON: %+v", d.Request)
	}
	if d.Response == nil || !strings.Contains(string(d.Response.JSON), `"hello"`) {
		t.Fatalf("response body: %+v", d.Response)
	}
	// Structured mode (file lines, Redis stream entries) embeds data as JSON.
	line, err := EncodeEvent(&ev)
	if err != nil || !strings.Contains(string(line), `"data":{"request_id":"req-1"`) || strings.Contains(string(line), "data_base64") {
		t.Fatalf("structured JSON: %v %s", err, line)
	}
	back, err := DecodeEvent(line)
	if err != nil || string(back.Data()) != string(ev.Data()) {
		t.Fatalf("round trip: %v", err)
	}
	// Without bodies, and a non-JSON body goes base64.
	d2 := BuildRequestCompleted(sampleInfo("x"), false)
	if d2.Request != nil || d2.Response != nil {
		t.Fatal("bodies must be omitted when switched off")
	}
	info := sampleInfo("y")
	info.ResponseBody, info.ResponseContentType = []byte{0xff, 0x00, 0x01}, "audio/mpeg"
	if d3 := BuildRequestCompleted(info, true); d3.Response.Base64 == nil || d3.Response.JSON != nil {
		t.Fatalf("binary body must be base64: %+v", d3.Response)
	}
	// A cache hit: usage source none with zero tokens.
	hit := sampleInfo("z")
	hit.CacheStatus, hit.Usage = llmproxy.CacheHit, llmproxy.Usage{}
	if d4 := BuildRequestCompleted(hit, false); d4.Usage.Source != llmproxy.UsageNone || d4.CacheStatus != "hit" {
		t.Fatalf("cache hit: %+v", d4)
	}
}

func TestManagementEvents(t *testing.T) {
	at := time.Now()
	evs := []func() (event.Event, error){
		func() (event.Event, error) {
			return NewProjectUpdatedEvent("/llmproxy/functions/manage-projects", "req-9", ProjectUpdated{ProjectID: "p1", Action: "project.update", At: at})
		},
		func() (event.Event, error) {
			return NewTokenCreatedEvent("/llmproxy/functions/manage-tokens", "req-10", TokenChanged{TokenID: "t1", ProjectID: "p1", Action: "token.create", At: at})
		},
		func() (event.Event, error) {
			return NewTokenRevokedEvent("/llmproxy/functions/manage-tokens", "req-11/t1", TokenChanged{TokenID: "t1", ProjectID: "p1", Action: "token.revoke", At: at})
		},
	}
	for _, f := range evs {
		ev, err := f()
		if err != nil || ev.Validate() != nil || ev.Subject() != "p1" || !KnownType(ev.Type()) {
			t.Fatalf("%v %v %s", err, ev.Validate(), ev)
		}
	}
}

// --- emitter ---

type recordingPublisher struct {
	mu      sync.Mutex
	got     []event.Event
	batches int
	fail    int // fail this many calls first (retryable)
	block   chan struct{}
}

func (p *recordingPublisher) Publish(ctx context.Context, evs []event.Event) error {
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("sink down")
	}
	p.batches++
	p.got = append(p.got, evs...)
	return nil
}

func (p *recordingPublisher) events() []event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]event.Event(nil), p.got...)
}

func TestEmitterPublishesAndDrainsOnClose(t *testing.T) {
	pub := &recordingPublisher{fail: 2}
	e := NewEmitter(pub, EmitterOptions{BatchSize: 10, Retries: 5, RetryBackoff: time.Millisecond, Bodies: true}, nil)
	for i := range 25 {
		e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
	}
	mev, _ := NewTokenCreatedEvent("/m", "m1", TokenChanged{TokenID: "t", ProjectID: "p", At: time.Now()})
	if err := e.Emit(context.Background(), mev); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := pub.events()
	if len(got) != 26 || e.Dropped() != 0 || e.Published() != 26 {
		t.Fatalf("published %d, dropped %d", len(got), e.Dropped())
	}
	ids := map[string]bool{}
	for _, ev := range got {
		ids[ev.ID()] = true
	}
	if len(ids) != 26 {
		t.Fatalf("duplicate or missing ids: %d", len(ids))
	}
	// After Close: counted, not silent.
	e.RequestCompleted(sampleInfo("late"))
	if e.Dropped() != 1 {
		t.Fatalf("late event must be counted as dropped, got %d", e.Dropped())
	}
}

// The emitter lets a batch fill in its queue: a full batch goes out at once
// (well before FlushInterval), a partial one when FlushInterval has passed
// since its first event, and what is queued at Close is drained.
func TestEmitterBatchesByCountAndInterval(t *testing.T) {
	waitFor := func(t *testing.T, pub *recordingPublisher, n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(pub.events()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("published %d events, want %d", len(pub.events()), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	batches := func(pub *recordingPublisher) int {
		pub.mu.Lock()
		defer pub.mu.Unlock()
		return pub.batches
	}

	t.Run("full batches do not wait for the interval", func(t *testing.T) {
		pub := &recordingPublisher{}
		e := NewEmitter(pub, EmitterOptions{BatchSize: 10, FlushInterval: time.Hour}, nil)
		for i := range 25 {
			e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
		}
		waitFor(t, pub, 20)
		if got := len(pub.events()); got != 20 || batches(pub) != 2 {
			t.Fatalf("before Close: %d events in %d batches, want 20 in 2 (the last 5 wait for the interval)", got, batches(pub))
		}
		if err := e.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := len(pub.events()); got != 25 || batches(pub) != 3 {
			t.Fatalf("after Close: %d events in %d batches, want 25 in 3", got, batches(pub))
		}
	})
	t.Run("a partial batch goes out after the interval", func(t *testing.T) {
		pub := &recordingPublisher{}
		e := NewEmitter(pub, EmitterOptions{BatchSize: 100, FlushInterval: 20 * time.Millisecond}, nil)
		defer e.Close(context.Background())
		for i := range 3 {
			e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
		}
		waitFor(t, pub, 3)
		if b := batches(pub); b < 1 || b > 3 {
			t.Fatalf("%d batches for 3 events", b)
		}
	})
}

func TestEmitterNeverBlocksAndCountsDrops(t *testing.T) {
	pub := &recordingPublisher{block: make(chan struct{})}
	reg := prometheus.NewRegistry()
	e := NewEmitter(pub, EmitterOptions{BufferSize: 4, BatchSize: 1, Registerer: reg}, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RequestCompleted blocked on a full queue")
	}
	// The worker holds at most 1 in flight and the queue 4: ≥ 95 dropped.
	if d := e.Dropped(); d < 95 {
		t.Fatalf("dropped %d, want ≥ 95", d)
	}
	if v := testenv.Counter(t, reg, "llm_proxy_events_dropped_total", "reason", DropQueueFull); v < 95 {
		t.Fatalf("metric llm_proxy_events_dropped_total{reason=queue_full} = %v", v)
	}
	close(pub.block)
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if int(e.Published())+int(e.Dropped()) != 100 {
		t.Fatalf("published %d + dropped %d != 100", e.Published(), e.Dropped())
	}
}

func TestEmitterCloseGivesUpAtDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pub := PublisherFunc(func(ctx context.Context, evs []event.Event) error { return errors.New("down") })
		e := NewEmitter(pub, EmitterOptions{Retries: 1000, RetryBackoff: 50 * time.Millisecond}, nil)
		e.RequestCompleted(sampleInfo("r"))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := e.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v", err)
		}
		if e.Dropped() != 1 {
			t.Fatalf("abandoned event must be counted: %d", e.Dropped())
		}
	})
}

func TestEmitterDropsPermanentRejections(t *testing.T) {
	calls := atomic.Int32{}
	pub := PublisherFunc(func(ctx context.Context, evs []event.Event) error {
		calls.Add(1)
		return Permanent(errors.New("400"))
	})
	e := NewEmitter(pub, EmitterOptions{Retries: 5, RetryBackoff: time.Millisecond}, nil)
	e.RequestCompleted(sampleInfo("r"))
	_ = e.Close(context.Background())
	if calls.Load() != 1 || e.Dropped() != 1 {
		t.Fatalf("permanent failure: %d calls, %d dropped", calls.Load(), e.Dropped())
	}
}

// BenchmarkRequestCompleted measures the request-path cost of emitting: a
// copy of RequestInfo into the queue (bodies off, the default).
func BenchmarkRequestCompleted(b *testing.B) {
	pub := PublisherFunc(func(context.Context, []event.Event) error { return nil })
	e := NewEmitter(pub, EmitterOptions{BufferSize: 1 << 16}, nil)
	defer e.Close(context.Background())
	info := sampleInfo("bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.RequestCompleted(info)
	}
}

// BenchmarkRequestCompletedWithBodies adds the one copy of the captured bodies.
func BenchmarkRequestCompletedWithBodies(b *testing.B) {
	pub := PublisherFunc(func(context.Context, []event.Event) error { return nil })
	e := NewEmitter(pub, EmitterOptions{BufferSize: 1 << 16, Bodies: true}, nil)
	defer e.Close(context.Background())
	info := sampleInfo("bench")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		e.RequestCompleted(info)
	}
}

// --- publishers ---

func TestBrokerDeliversOverHTTPWithFilterAndRetry(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	failFirst := atomic.Int32{}
	failFirst.Store(2)
	sub := func(name string, flaky bool) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Ce-Id") == "" || r.Header.Get("Ce-Specversion") != "1.0" {
				t.Errorf("%s: not a binary-mode CloudEvent: %v", name, r.Header)
			}
			if flaky && failFirst.Add(-1) >= 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			mu.Lock()
			got[name] = append(got[name], r.Header.Get("Ce-Id"))
			mu.Unlock()
			w.WriteHeader(http.StatusOK)
		}))
	}
	requests, tokens, bad := sub("requests", true), sub("tokens", false), httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer requests.Close()
	defer tokens.Close()
	defer bad.Close()
	b := NewBroker(BrokerOptions{Retries: 3, Backoff: time.Millisecond}, nil)
	b.Subscribe(Trigger{Name: "requests", Filter: map[string]string{"type": TypeRequestCompleted}, Subscriber: requests.URL})
	b.Subscribe(Trigger{Name: "tokens-p1", Filter: map[string]string{"type": TypeTokenCreated, ExtProjectID: "p1"}, Subscriber: tokens.URL})

	req, _ := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo("r1"), false))
	tok1, _ := NewTokenCreatedEvent("/m", "t-p1", TokenChanged{TokenID: "t", ProjectID: "p1", At: time.Now()})
	tok2, _ := NewTokenCreatedEvent("/m", "t-p2", TokenChanged{TokenID: "t", ProjectID: "p2", At: time.Now()})
	if err := b.Publish(context.Background(), []event.Event{req, tok1, tok2}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if fmt.Sprint(got["requests"]) != "[r1]" || fmt.Sprint(got["tokens"]) != "[t-p1]" {
		t.Fatalf("deliveries: %v", got)
	}
	mu.Unlock()

	// A 400 from a subscriber is not retried and is reported.
	b.Subscribe(Trigger{Name: "bad", Filter: map[string]string{"id": "poison"}, Subscriber: bad.URL})
	poison, _ := NewTokenCreatedEvent("/m", "poison", TokenChanged{TokenID: "t", ProjectID: "p3", At: time.Now()})
	err := b.Publish(context.Background(), []event.Event{poison})
	if err == nil || !IsPermanent(err) {
		t.Fatalf("want a permanent error, got %v", err)
	}

	// Ingress: the broker as K_SINK.
	ing := httptest.NewServer(b)
	defer ing.Close()
	p, err := NewHTTPPublisher(ing.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req2, _ := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo("r2"), false))
	if err := p.Publish(context.Background(), []event.Event{req2}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got["requests"]) != "[r1 r2]" {
		t.Fatalf("ingress delivery: %v", got["requests"])
	}
}

func TestHTTPPublisherSendsBinaryMode(t *testing.T) {
	type seen struct {
		header http.Header
		body   string
	}
	ch := make(chan seen, 4)
	status := atomic.Int32{}
	status.Store(http.StatusAccepted)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- seen{r.Header.Clone(), string(b)}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	p, err := NewHTTPPublisher(srv.URL+"/async-function/dispatcher", nil)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := NewRequestCompletedEvent("/llmproxy/functions/proxy", BuildRequestCompleted(sampleInfo("req-7"), false))
	if err := p.Publish(context.Background(), []event.Event{ev}); err != nil {
		t.Fatal(err)
	}
	s := <-ch
	want := map[string]string{
		"Ce-Id": "req-7", "Ce-Specversion": "1.0", "Ce-Type": TypeRequestCompleted, "Ce-Source": "/llmproxy/functions/proxy",
		"Ce-Subject": "prj_1", "Ce-Projectid": "prj_1", "Ce-Tokenid": "tok_1", "Ce-Model": "gpt-4o-mini", "Content-Type": "application/json",
	}
	for k, v := range want {
		if got := s.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	var d RequestCompleted
	if err := json.Unmarshal([]byte(s.body), &d); err != nil || d.RequestID != "req-7" {
		t.Fatalf("body is not the data: %v %s", err, s.body)
	}
	// 503 is retryable, 400 permanent.
	status.Store(http.StatusServiceUnavailable)
	if err := p.Publish(context.Background(), []event.Event{ev}); err == nil || IsPermanent(err) {
		t.Fatalf("503: %v", err)
	}
	<-ch
	status.Store(http.StatusBadRequest)
	if err := p.Publish(context.Background(), []event.Event{ev}); !IsPermanent(err) {
		t.Fatalf("400: %v", err)
	}
	<-ch
}

func TestRedisStreamPublisher(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	stream := prefix + "events"
	p := NewRedisStreamPublisher(rdb, stream, 50)
	var batch []event.Event
	for i := range 300 {
		ev, _ := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)), false))
		batch = append(batch, ev)
		if len(batch) == 100 {
			if err := p.Publish(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	n, err := rdb.XLen(context.Background(), stream).Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ trims in whole macro nodes: bounded near 50, never all 300.
	if n < 50 || n >= 300 {
		t.Fatalf("stream length %d, want about 50", n)
	}
	last, err := rdb.XRevRangeN(context.Background(), stream, "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatal(err)
	}
	raw, _ := last[0].Values[StreamField].(string)
	ev, err := DecodeEvent([]byte(raw))
	if err != nil || ev.ID() != "r299" || ev.Type() != TypeRequestCompleted {
		t.Fatalf("decoded %v %s", err, ev)
	}
	// Redis down: a retryable error.
	down := NewRedisStreamPublisher(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1}), stream, 10)
	if err := down.Publish(context.Background(), batch[:0:0]); err != nil {
		t.Fatal(err)
	}
	ev1, _ := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo("x"), false))
	if err := down.Publish(context.Background(), []event.Event{ev1}); err == nil || IsPermanent(err) {
		t.Fatalf("unreachable Redis: %v", err)
	}
}

func TestEmitterOverRealHTTPBroker(t *testing.T) {
	var count atomic.Int32
	p, _ := cloudevents.NewHTTP()
	h, _ := cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(ctx context.Context, ev event.Event) error {
		count.Add(1)
		return nil
	})
	sub := httptest.NewServer(h)
	defer sub.Close()
	b := NewBroker(BrokerOptions{}, nil)
	b.Subscribe(Trigger{Name: "all", Subscriber: sub.URL})
	e := NewEmitter(b, EmitterOptions{}, nil)
	for i := range 20 {
		e.RequestCompleted(sampleInfo(fmt.Sprintf("r%d", i)))
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if count.Load() != 20 {
		t.Fatalf("subscriber got %d events", count.Load())
	}
}
