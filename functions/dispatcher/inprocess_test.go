package dispatcher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// mixedEvents are request events with awkward bodies (HTML characters,
// U+2028, non-JSON, pretty-printed JSON, a stream) and management events.
func mixedEvents(t testing.TB, n int) []event.Event {
	t.Helper()
	var evs []event.Event
	for i := range n {
		info := &llmproxy.RequestInfo{
			RequestID: fmt.Sprintf("req-%d", i), ClientRequestID: "c<1>&", Method: "POST", Path: "/v1/chat/completions",
			TokenID: "tok_1", ProjectID: "prj_1", Model: "gpt-4o-mini", Status: 200, CacheStatus: llmproxy.CacheMiss,
			Start:    time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
			Duration: time.Duration(i) * 1234567 * time.Nanosecond, TimeToFirstByte: 5 * time.Millisecond,
			Usage: llmproxy.Usage{PromptTokens: int64(i), CompletionTokens: 2, TotalTokens: int64(i) + 2, Source: llmproxy.UsageReported},
		}
		switch i % 4 {
		case 0:
			info.RequestBody = []byte("{\n  \"model\": \"gpt-4o-mini\",\n  \"messages\": [{\"role\": \"user\", \"content\": \"<b>hi</b> & \u2028 é\"}]\n}")
			info.ResponseBody = []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"a<b"}}]}`)
			info.ResponseContentType = "application/json"
		case 1:
			info.RequestBody = []byte("not json <at all>")
			info.ResponseBody = []byte("data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"x>y\"}}]}\n\ndata: [DONE]\n\n")
			info.ResponseContentType = "text/event-stream"
		case 2:
			info.ErrorCode, info.Status, info.ProjectID, info.TokenID = "invalid_token", 401, "", ""
		}
		ev, err := events.NewRequestCompletedEvent(events.DefaultSource, events.BuildRequestCompleted(info, true))
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
		if i%10 == 0 {
			tok, err := events.NewTokenRevokedEvent("/llmproxy/functions/management", fmt.Sprintf("aud-%d/tok_%d", i, i),
				events.TokenChanged{TokenID: fmt.Sprintf("tok_%d", i), ProjectID: "prj_1", Action: "token.revoke", Actor: "admin <root>", RequestID: "r", At: info.Start})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, tok)
		}
	}
	return evs
}

func fileDispatcher(t testing.TB, path string) *Dispatcher {
	t.Helper()
	be, err := NewBackend(BackendConfig{Service: ServiceFile, Endpoint: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.(*FileBackend).Close() })
	d, err := New(Deps{Backend: be})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// The in-process broker writes the same file, byte for byte, as the broker
// delivering over HTTP to the dispatcher's handler.
func TestInProcessBrokerWritesTheSameFileAsHTTP(t *testing.T) {
	dir := t.TempDir()
	evs := mixedEvents(t, 40)

	overHTTP := filepath.Join(dir, "http.jsonl")
	srv := httptest.NewServer(fileDispatcher(t, overHTTP).Handler())
	defer srv.Close()
	hb := events.NewBroker(events.BrokerOptions{}, nil)
	hb.Subscribe(events.Trigger{Name: "file", Subscriber: srv.URL, Batch: true})

	inProcess := filepath.Join(dir, "inprocess.jsonl")
	lb := events.NewBroker(events.BrokerOptions{}, nil)
	lb.Subscribe(events.Trigger{Name: "file", Deliver: fileDispatcher(t, inProcess).DeliverBatch})

	for _, b := range []*events.Broker{hb, lb} {
		for lo := 0; lo < len(evs); lo += 7 { // batches, and redelivering one
			hi := min(lo+7, len(evs))
			if err := b.Publish(context.Background(), evs[lo:hi]); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Publish(context.Background(), evs[3:9]); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(overHTTP)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(inProcess)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(want, []byte("\n")); n != len(evs) {
		t.Fatalf("HTTP path wrote %d lines for %d events", n, len(evs))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("in-process file differs from the HTTP one:\n got %s\nwant %s", got, want)
	}
}

// Poison events are not retried by the in-process broker; transient backend
// failures are, for the failed events only.
func TestInProcessBrokerRetriesAndPoison(t *testing.T) {
	b := &perEventBackend{}
	d, err := New(Deps{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	br := events.NewBroker(events.BrokerOptions{Retries: 2, Backoff: time.Millisecond}, nil)
	br.Subscribe(events.Trigger{Name: "d", Deliver: d.DeliverBatch})
	poison := requestEvent(t, "p1")
	poison.SetType("io.llmproxy.nonsense.v9")
	evs := []event.Event{requestEvent(t, "k1"), requestEvent(t, "k2"), poison, requestEvent(t, "k3")}

	b.setFailing("k2") // first call fails k2, the broker's retry delivers it
	b.once = true
	err = br.Publish(context.Background(), evs)
	var be *events.BatchError
	if !errors.As(err, &be) || len(be.Errs) != len(evs) {
		t.Fatalf("want a *BatchError, got %v", err)
	}
	for i, e := range be.Errs {
		if (i == 2) != (e != nil) {
			t.Errorf("event %s: error %v", evs[i].ID(), e)
		}
	}
	if !errors.Is(be.Errs[2], ErrPoison) || !events.IsPermanent(be.Errs[2]) {
		t.Errorf("poison event: %v, want ErrPoison and permanent", be.Errs[2])
	}
	if b.calls != 2 {
		t.Errorf("backend called %d times, want 2 (one batch, one retry of k2)", b.calls)
	}
	for _, id := range []string{"k1", "k2", "k3"} {
		if n := b.count(id); n != 1 {
			t.Errorf("%s delivered %d times", id, n)
		}
	}
}

// Poison data is rejected per event, whether the dispatcher decodes it (a
// backend that reads Record.Request) or the backend's encoding finds it (a
// RawBackend: the file); the other events of the batch are delivered.
func TestPoisonDataPerEvent(t *testing.T) {
	cases := []struct {
		name       string
		data       string // "" the event's own, "-" empty
		poisonRaw  bool   // file, webhook
		poisonRead bool   // lunary, helicone, custom backends
	}{
		{"request data", "", false, false},
		{"not JSON", `{"status":`, true, true},
		{"empty", "-", true, true},
		{"not an object", `[1,2]`, true, true},
		{"object of other types", `{"status":"ok"}`, false, true},
		{"pretty object", "{\n \"status\": 200\n}", false, false},
	}
	var evs []event.Event
	for i, tc := range cases {
		ev := requestEvent(t, fmt.Sprintf("d%d", i))
		switch tc.data {
		case "":
		case "-":
			ev.DataEncoded = []byte{}
		default:
			ev.DataEncoded = []byte(tc.data)
		}
		evs = append(evs, ev)
	}
	for _, raw := range []bool{true, false} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.jsonl")
			var d *Dispatcher
			counting := &countingBackend{}
			if raw {
				d = fileDispatcher(t, path)
			} else {
				var err error
				if d, err = New(Deps{Backend: counting}); err != nil {
					t.Fatal(err)
				}
			}
			errs := d.DeliverBatch(context.Background(), evs)
			var want []byte
			for i, tc := range cases {
				poison := tc.poisonRead
				if raw {
					poison = tc.poisonRaw
				}
				if (errs[i] != nil) != poison || errs[i] != nil && (!errors.Is(errs[i], ErrPoison) || !events.IsPermanent(errs[i])) {
					t.Errorf("%s: error %v, want poison %v", tc.name, errs[i], poison)
				}
				if !poison {
					line, _ := json.Marshal(&evs[i])
					want = append(append(want, line...), '\n')
				}
				if !raw && counting.count(evs[i].ID()) != map[bool]int{true: 0, false: 1}[poison] {
					t.Errorf("%s: delivered %d times", tc.name, counting.count(evs[i].ID()))
				}
			}
			if raw {
				if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
					t.Errorf("file:\n%s\nwant:\n%s", got, want)
				}
			}
		})
	}
	for _, b := range []Backend{&FileBackend{}, &WebhookBackend{}} {
		if _, ok := b.(RawBackend); !ok {
			t.Errorf("%T is not a RawBackend", b)
		}
	}
	for _, b := range []Backend{&LunaryBackend{}, &HeliconeBackend{}} {
		if _, ok := b.(RawBackend); ok {
			t.Errorf("%T reads Record.Request and must not be a RawBackend", b)
		}
	}
}

// Each line of the file is json.Marshal of the event, whatever its data
// looks like (here: events as an HTTP receiver hands them over, with
// pretty-printed data or HTML characters, next to ours).
func TestFileLinesAreJSONMarshal(t *testing.T) {
	evs := mixedEvents(t, 12)
	pretty := requestEvent(t, "pretty")
	pretty.DataEncoded = []byte("{\n  \"request_id\": \"pretty\",\n  \"path\": \"<a & b>\"\n}")
	evs = append(evs, pretty)
	path := filepath.Join(t.TempDir(), "events.jsonl")
	fb, err := NewFileBackend(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	recs := make([]Record, len(evs))
	for i := range evs {
		recs[i] = Record{Event: evs[i]}
	}
	if err := fb.Deliver(context.Background(), append(recs, recs[0])); err != nil { // recs[0] twice: written once
		t.Fatal(err)
	}
	var want []byte
	for i := range evs {
		line, err := json.Marshal(&evs[i])
		if err != nil {
			t.Fatal(err)
		}
		want = append(append(want, line...), '\n')
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
}
