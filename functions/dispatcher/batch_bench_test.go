package dispatcher

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// BenchmarkBrokerToFileDispatcher: time and process CPU (user+sys) per
// event from the broker's Publish to the file backend: over loopback HTTP,
// one event per request (binary) or in batches, or in-process (the
// dispatcher's DeliverBatch as the trigger, as llm-proxy serve runs it). The
// file backend syncs once per delivery, so the wall time per event mostly
// shows the syncs saved; cpu-ns/event is the cost that matters under load.
func BenchmarkBrokerToFileDispatcher(b *testing.B) {
	for _, size := range []int{1, 8, 64} {
		for _, mode := range []string{"binary", "batch", "in-process"} {
			b.Run(fmt.Sprintf("events=%d/%s", size, mode), func(b *testing.B) {
				be, err := NewBackend(BackendConfig{Service: ServiceFile, Endpoint: filepath.Join(b.TempDir(), "events.jsonl")})
				if err != nil {
					b.Fatal(err)
				}
				defer be.(*FileBackend).Close()
				d, err := New(Deps{Backend: be})
				if err != nil {
					b.Fatal(err)
				}
				br := events.NewBroker(events.BrokerOptions{}, nil)
				switch mode {
				case "in-process":
					br.Subscribe(events.Trigger{Name: "file", Deliver: d.DeliverBatch})
				default:
					srv := httptest.NewServer(d.Handler())
					defer srv.Close()
					br.Subscribe(events.Trigger{Name: "file", Subscriber: srv.URL, Batch: mode == "batch"})
				}
				n := 0
				cpu0 := testenv.ProcessCPU(b)
				b.ReportAllocs()
				for b.Loop() {
					evs := make([]event.Event, size)
					for i := range evs {
						n++
						evs[i] = requestEvent(b, fmt.Sprintf("bench-%d", n))
					}
					if err := br.Publish(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
				b.ReportMetric(float64((testenv.ProcessCPU(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
			})
		}
	}
}

// BenchmarkEventPathToFile is llm-proxy serve's whole event path per proxied
// request: Emitter.RequestCompleted (the request path's part), the emitter's
// worker building the CloudEvent and batching, the in-process broker, the
// dispatcher (dedup, decode) and the file backend (encode, one write and
// fsync per batch of up to 100). cpu-ns/event is the process CPU it costs.
func BenchmarkEventPathToFile(b *testing.B) {
	for _, bodies := range []bool{false, true} {
		b.Run(fmt.Sprintf("bodies=%v", bodies), func(b *testing.B) {
			be, err := NewBackend(BackendConfig{Service: ServiceFile, Endpoint: filepath.Join(b.TempDir(), "events.jsonl")})
			if err != nil {
				b.Fatal(err)
			}
			defer be.(*FileBackend).Close()
			d, err := New(Deps{Backend: be})
			if err != nil {
				b.Fatal(err)
			}
			br := events.NewBroker(events.BrokerOptions{}, nil)
			br.Subscribe(events.Trigger{Name: "file", Deliver: d.DeliverBatch})
			em := events.NewEmitter(br, events.EmitterOptions{Bodies: bodies, BufferSize: 1 << 16, BatchSize: 100, FlushInterval: 10 * time.Millisecond}, nil)
			info := benchInfo()
			cpu0 := testenv.ProcessCPU(b)
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n++
				info.RequestID = fmt.Sprintf("bench-%d", n)
				em.RequestCompleted(info)
				if n%1000 == 0 { // keep the queue from overflowing
					for em.Published()+em.Dropped() < uint64(n-500) {
						time.Sleep(time.Millisecond)
					}
				}
			}
			if err := em.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			if em.Dropped() != 0 || em.Published() != uint64(n) {
				b.Fatalf("published %d, dropped %d of %d", em.Published(), em.Dropped(), n)
			}
			b.ReportMetric(float64((testenv.ProcessCPU(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
		})
	}
}

func benchInfo() *llmproxy.RequestInfo {
	return &llmproxy.RequestInfo{
		Method: "POST", Path: "/v1/chat/completions", TokenID: "tok_01HZX5", ProjectID: "prj_01HZX2",
		Model: "gpt-4o-mini", Status: 200, CacheStatus: llmproxy.CacheMiss,
		Start: time.Now(), TimeToFirstByte: 100 * time.Millisecond, Duration: 1500 * time.Millisecond, UpstreamLatency: 90 * time.Millisecond,
		Usage:               llmproxy.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18, Source: llmproxy.UsageReported},
		RequestBody:         []byte(`{"model":"gpt-4o-mini","temperature":0.2,"messages":[{"role":"user","content":"Say hi"}]}`),
		ResponseBody:        []byte(`{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`),
		ResponseContentType: "application/json",
	}
}
