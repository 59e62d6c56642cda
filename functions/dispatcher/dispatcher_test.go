package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

func requestEvent(t testing.TB, id string) event.Event {
	t.Helper()
	info := &llmproxy.RequestInfo{
		RequestID: id, Method: "POST", Path: "/v1/chat/completions", TokenID: "tok_1", ProjectID: "prj_1",
		Model: "gpt-4o-mini", Status: 200, CacheStatus: "miss",
		Start:           time.Date(2026, 1, 2, 3, 4, 5, 250_000_000, time.UTC),
		TimeToFirstByte: 100 * time.Millisecond, Duration: 1500 * time.Millisecond,
		Usage:               llmproxy.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18, Source: llmproxy.UsageReported},
		RequestBody:         []byte(`{"model":"gpt-4o-mini","temperature":0.2,"messages":[{"role":"user","content":"Say hi"}]}`),
		ResponseBody:        []byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}]}`),
		ResponseContentType: "application/json",
	}
	ev, err := events.NewRequestCompletedEvent(events.DefaultSource, events.BuildRequestCompleted(info, true))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func record(t testing.TB, id string) Record {
	ev := requestEvent(t, id)
	rec, err := decode(&ev, false)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// countingBackend records deliveries; fail makes the next n calls fail.
type countingBackend struct {
	mu    sync.Mutex
	got   map[string]int
	fail  int
	err   error
	calls int
}

func (b *countingBackend) Name() string          { return "counting" }
func (b *countingBackend) Accepts(t string) bool { return t == events.TypeRequestCompleted }
func (b *countingBackend) Deliver(_ context.Context, recs []Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.fail > 0 {
		b.fail--
		return b.err
	}
	if b.got == nil {
		b.got = map[string]int{}
	}
	for _, r := range recs {
		b.got[r.Event.ID()]++
	}
	return nil
}

func (b *countingBackend) count(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[id]
}

func postEvent(t *testing.T, url string, ev event.Event) int {
	t.Helper()
	req, err := cloudevents.NewHTTPRequestFromEvent(context.Background(), url, ev)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func dedupers(t *testing.T) map[string]Deduper {
	rdb, prefix := testenv.Redis(t)
	return map[string]Deduper{
		"memory": NewMemoryDedup(100, time.Hour, time.Minute),
		"redis":  NewRedisDedup(rdb, prefix+"dedup:", time.Hour, time.Minute),
	}
}

func TestIdempotentAndStatusCodes(t *testing.T) {
	for name, dd := range dedupers(t) {
		t.Run(name, func(t *testing.T) {
			b := &countingBackend{}
			d, err := New(Deps{Backend: b, Dedup: dd})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(d.Handler())
			defer srv.Close()

			ev := requestEvent(t, "req-"+name)
			if c := postEvent(t, srv.URL, ev); c != 200 {
				t.Fatalf("first delivery: %d", c)
			}
			if c := postEvent(t, srv.URL, ev); c != 200 {
				t.Fatalf("redelivery must be acknowledged: %d", c)
			}
			if n := b.count(ev.ID()); n != 1 {
				t.Fatalf("backend got the event %d times", n)
			}

			// Backend failure → 503, nothing marked; the retry delivers once.
			b.mu.Lock()
			b.fail, b.err = 1, errors.New("backend down")
			b.mu.Unlock()
			ev2 := requestEvent(t, "req2-"+name)
			if c := postEvent(t, srv.URL, ev2); c != http.StatusServiceUnavailable {
				t.Fatalf("backend down: %d", c)
			}
			if c := postEvent(t, srv.URL, ev2); c != 200 || b.count(ev2.ID()) != 1 {
				t.Fatalf("retry: %d, delivered %d", c, b.count(ev2.ID()))
			}

			// Backend rejects the payload for good → 4xx poison.
			b.mu.Lock()
			b.fail, b.err = 1, events.Permanent(errors.New("400 from backend"))
			b.mu.Unlock()
			if c := postEvent(t, srv.URL, requestEvent(t, "req3-"+name)); c != http.StatusBadRequest {
				t.Fatalf("rejected by backend: %d", c)
			}

			// Unknown type and undecodable data → 400, never reach the backend.
			unknown := requestEvent(t, "u-"+name)
			unknown.SetType("io.llmproxy.nonsense.v9")
			if c := postEvent(t, srv.URL, unknown); c != http.StatusBadRequest {
				t.Fatalf("unknown type: %d", c)
			}
			bad := requestEvent(t, "bad-"+name)
			_ = bad.SetData("application/json", []byte(`[1,2`))
			if c := postEvent(t, srv.URL, bad); c != http.StatusBadRequest {
				t.Fatalf("bad data: %d", c)
			}

			// A delivery in progress elsewhere → 429.
			ev4 := requestEvent(t, "req4-"+name)
			if _, err := dd.Claim(context.Background(), []string{Key(&ev4)}, "other"); err != nil {
				t.Fatal(err)
			}
			if c := postEvent(t, srv.URL, ev4); c != http.StatusTooManyRequests {
				t.Fatalf("in flight: %d", c)
			}

			// A type the backend does not take is acknowledged, not delivered.
			tok, _ := events.NewTokenCreatedEvent("/m", "tok-"+name, events.TokenChanged{TokenID: "t", ProjectID: "p", At: time.Now()})
			if c := postEvent(t, srv.URL, tok); c != 200 || b.count(tok.ID()) != 0 {
				t.Fatalf("unsupported type: %d", c)
			}
		})
	}
}

// Receive has functions-framework-go's CloudEvent function signature
// (funcframework.RegisterCloudEventFunctionContext, functions.CloudEvent).
var _ func(context.Context, cloudevents.Event) error = (*Dispatcher)(nil).Receive

func TestReceiveForFunctionsFramework(t *testing.T) {
	b := &countingBackend{}
	d, err := New(Deps{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	ev := requestEvent(t, "ff")
	if res := d.Receive(context.Background(), ev); res != nil {
		t.Fatalf("Receive = %v", res)
	}
	if res := d.Receive(context.Background(), ev); res != nil || b.count("ff") != 1 {
		t.Fatalf("duplicate: %v, count %d", res, b.count("ff"))
	}
}

func TestConcurrentRedeliveriesDeliverOnce(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	b := &countingBackend{}
	// Two dispatcher instances sharing the Redis dedup store.
	d1, _ := New(Deps{Backend: b, Dedup: NewRedisDedup(rdb, prefix, time.Hour, time.Minute)})
	d2, _ := New(Deps{Backend: b, Dedup: NewRedisDedup(rdb, prefix, time.Hour, time.Minute)})
	ev := requestEvent(t, "race")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := d1
			if i%2 == 1 {
				d = d2
			}
			for {
				err := d.DeliverBatch(context.Background(), []event.Event{ev})[0]
				if err == nil {
					return
				}
				if !errors.Is(err, ErrInFlight) {
					t.Error(err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if n := b.count("race"); n != 1 {
		t.Fatalf("delivered %d times", n)
	}
}

func TestLunaryPayload(t *testing.T) {
	var bodies []map[string]any
	var mu sync.Mutex
	status := atomic.Int32{}
	status.Store(200)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/runs/ingest" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if r.Header.Get("Authorization") != "Bearer lunary-key" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Errorf("headers: %v", r.Header)
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("body: %v", err)
		}
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	b, err := NewBackend(BackendConfig{Service: ServiceLunary, Endpoint: srv.URL + "/v1/runs/ingest", APIKey: "lunary-key", BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	recs := []Record{record(t, "a"), record(t, "b"), record(t, "c")}
	if err := b.Deliver(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	if len(bodies) != 2 {
		t.Fatalf("want 2 batched requests, got %d", len(bodies))
	}
	evs := bodies[0]["events"].([]any)
	if len(evs) != 4 {
		t.Fatalf("first batch: %d events", len(evs))
	}
	start, end := evs[0].(map[string]any), evs[1].(map[string]any)
	if start["type"] != "llm" || start["event"] != "start" || end["event"] != "end" || start["runId"] != end["runId"] || start["runId"] == "" {
		t.Fatalf("run events: %v / %v", start, end)
	}
	if start["name"] != "gpt-4o-mini" || start["userId"] != "tok_1" || start["timestamp"] != "2026-01-02T03:04:05.25Z" || end["timestamp"] != "2026-01-02T03:04:06.75Z" {
		t.Fatalf("start: %v end: %v", start, end)
	}
	input := start["input"].([]any)[0].(map[string]any)
	if input["content"] != "Say hi" || start["params"].(map[string]any)["temperature"] != 0.2 {
		t.Fatalf("input/params: %v", start)
	}
	if start["metadata"].(map[string]any)["project_id"] != "prj_1" {
		t.Fatalf("metadata: %v", start["metadata"])
	}
	if out := end["output"].(map[string]any); out["content"] != "Hi!" || out["role"] != "assistant" {
		t.Fatalf("output: %v", end["output"])
	}
	if u := end["tokensUsage"].(map[string]any); u["prompt"] != 11.0 || u["completion"] != 7.0 {
		t.Fatalf("tokensUsage: %v", u)
	}
	// The run id is stable for the same event (a resend updates the run).
	if LunaryEvents(record(t, "a"))[0].RunID != start["runId"] {
		t.Fatal("runId must derive from (source, id)")
	}
	status.Store(503)
	if err := b.Deliver(context.Background(), recs[:1]); err == nil || events.IsPermanent(err) {
		t.Fatalf("503: %v", err)
	}
	status.Store(400)
	if err := b.Deliver(context.Background(), recs[:1]); !events.IsPermanent(err) {
		t.Fatalf("400: %v", err)
	}
}

func TestHeliconePayload(t *testing.T) {
	got := make(chan map[string]any, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/custom/v1/log" || r.Header.Get("Authorization") != "Bearer helicone-key" {
			t.Errorf("%s %s %v", r.Method, r.URL.Path, r.Header)
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("body: %v", err)
		}
		got <- body
	}))
	defer srv.Close()
	b, err := NewBackend(BackendConfig{Service: ServiceHelicone, Endpoint: srv.URL + "/custom/v1/log", APIKey: "helicone-key"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Deliver(context.Background(), []Record{record(t, "h1"), record(t, "h2")}); err != nil {
		t.Fatal(err)
	}
	body := <-got
	<-got // one POST per event
	preq := body["providerRequest"].(map[string]any)
	if preq["url"] != "custom-model-nopath" {
		t.Fatalf("url: %v", preq["url"])
	}
	if j := preq["json"].(map[string]any); j["model"] != "gpt-4o-mini" || len(j["messages"].([]any)) != 1 {
		t.Fatalf("request json: %v", j)
	}
	meta := preq["meta"].(map[string]any)
	for k, v := range meta {
		if _, ok := v.(string); !ok {
			t.Errorf("meta %s is not a string: %v", k, v)
		}
	}
	if meta["project_id"] != "prj_1" || meta["request_id"] != "h1" || meta["Helicone-User-Id"] != "tok_1" {
		t.Fatalf("meta: %v", meta)
	}
	presp := body["providerResponse"].(map[string]any)
	if presp["status"] != 200.0 {
		t.Fatalf("status: %v", presp["status"])
	}
	rj := presp["json"].(map[string]any)
	if rj["choices"] == nil || rj["usage"].(map[string]any)["total_tokens"] != 18.0 {
		t.Fatalf("response json: %v", rj)
	}
	timing := body["timing"].(map[string]any)
	st, et := timing["startTime"].(map[string]any), timing["endTime"].(map[string]any)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Unix()
	if st["seconds"] != float64(start) || st["milliseconds"] != 250.0 || et["seconds"] != float64(start+1) || et["milliseconds"] != 750.0 || timing["timeToFirstToken"] != 100.0 {
		t.Fatalf("timing: %v", timing)
	}
}

func TestWebhookSignature(t *testing.T) {
	secret := []byte("s3cret")
	type got struct {
		h    http.Header
		body []byte
	}
	ch := make(chan got, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch <- got{r.Header.Clone(), b}
		if err := VerifyWebhook(secret, r.Header.Get(HeaderSignature), r.Header.Get(HeaderTimestamp), b, time.Now(), 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	b, err := NewBackend(BackendConfig{Service: ServiceWebhook, Endpoint: srv.URL, WebhookSecret: string(secret)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Deliver(context.Background(), []Record{record(t, "w1")}); err != nil {
		t.Fatal(err)
	}
	g := <-ch
	if !strings.HasPrefix(g.h.Get(HeaderSignature), "sha256=") || len(g.h.Get(HeaderSignature)) != 7+64 || g.h.Get("Content-Type") != "application/json" || g.h.Get(HeaderEventID) != "w1" || g.h.Get(HeaderEventType) != events.TypeRequestCompleted {
		t.Fatalf("headers: %v", g.h)
	}
	var ce map[string]any
	if err := json.Unmarshal(g.body, &ce); err != nil || ce["id"] != "w1" || ce["specversion"] != "1.0" || ce["data"] == nil {
		t.Fatalf("body: %v %s", err, g.body)
	}
	ts := g.h.Get(HeaderTimestamp)
	if VerifyWebhook(secret, g.h.Get(HeaderSignature), ts, append(g.body, ' '), time.Now(), time.Minute) == nil {
		t.Fatal("a changed body must not verify")
	}
	if VerifyWebhook([]byte("other"), g.h.Get(HeaderSignature), ts, g.body, time.Now(), time.Minute) == nil {
		t.Fatal("another secret must not verify")
	}
	if VerifyWebhook(secret, g.h.Get(HeaderSignature), ts, g.body, time.Now().Add(time.Hour), time.Minute) == nil {
		t.Fatal("an old timestamp must not verify")
	}
	// A wrong secret on the sender → 401 → retryable (configuration error).
	wrong, _ := NewBackend(BackendConfig{Service: ServiceWebhook, Endpoint: srv.URL, WebhookSecret: "nope"})
	if err := wrong.Deliver(context.Background(), []Record{record(t, "w2")}); err == nil || events.IsPermanent(err) {
		t.Fatalf("401: %v", err)
	}
	<-ch
}

func TestBackendConfigErrors(t *testing.T) {
	for _, c := range []BackendConfig{
		{Service: ServiceLunary}, {Service: ServiceHelicone}, {Service: ServiceWebhook, WebhookSecret: "x"},
		{Service: ServiceWebhook, Endpoint: "http://x"}, {Service: "kafka"},
	} {
		if _, err := NewBackend(c); err == nil {
			t.Errorf("%+v: want an error", c)
		}
	}
}

func TestFileBackendRotationAndIdempotence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "events.jsonl")
	line, _ := events.EncodeEvent(&[]Record{record(t, "x")}[0].Event)
	fb, err := NewFileBackend(path, int64(len(line)*3+10)) // about 3 lines per file
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fb.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	for i := range 5 {
		if err := fb.Deliver(context.Background(), []Record{record(t, fmt.Sprintf("r%d-a", i)), record(t, fmt.Sprintf("r%d-b", i))}); err != nil {
			t.Fatal(err)
		}
	}
	// Redelivery of an already written event writes nothing.
	if err := fb.Deliver(context.Background(), []Record{record(t, "r4-b")}); err != nil {
		t.Fatal(err)
	}
	fb.Close()
	files, _ := filepath.Glob(path + "*")
	if len(files) < 3 {
		t.Fatalf("want rotated files, got %v", files)
	}
	ids := map[string]int{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, fi.Mode())
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ce struct{ ID string }
			if err := json.Unmarshal([]byte(l), &ce); err != nil {
				t.Fatalf("bad line %q", l)
			}
			ids[ce.ID]++
		}
	}
	if len(ids) != 10 {
		t.Fatalf("want 10 events, got %v", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("%s written %d times", id, n)
		}
	}

	// Reopen after a crash that tore the last line: the torn line is cut,
	// events already in the file are not written again.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"specversion":"1.0","id":"torn`)
	f.Close()
	fb2, err := NewFileBackend(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fb2.Close()
	if err := fb2.Deliver(context.Background(), []Record{record(t, "r4-b"), record(t, "new")}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "torn") || strings.Count(string(b), `"id":"r4-b"`) != 1 || strings.Count(string(b), `"id":"new"`) != 1 {
		t.Fatalf("after reopen:\n%s", b)
	}
}
