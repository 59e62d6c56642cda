package dispatcher

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
)

// BenchmarkBrokerToFileDispatcher: time and process CPU (user+sys) per
// event from the broker's Publish to the file backend, over loopback HTTP,
// one event per request against batches. The file backend syncs once per
// delivery, so the wall time per event mostly shows the syncs saved.
func BenchmarkBrokerToFileDispatcher(b *testing.B) {
	for _, size := range []int{1, 8, 64} {
		for _, batch := range []bool{false, true} {
			b.Run(fmt.Sprintf("events=%d/batch=%v", size, batch), func(b *testing.B) {
				be, err := NewBackend(BackendConfig{Service: ServiceFile, Endpoint: filepath.Join(b.TempDir(), "events.jsonl")})
				if err != nil {
					b.Fatal(err)
				}
				d, err := New(Deps{Backend: be})
				if err != nil {
					b.Fatal(err)
				}
				srv := httptest.NewServer(d.Handler())
				defer srv.Close()
				br := events.NewBroker(events.BrokerOptions{}, nil)
				br.Subscribe(events.Trigger{Name: "file", Subscriber: srv.URL, Batch: batch})
				n := 0
				cpu0 := cpuTime(b)
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
				b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(n), "cpu-ns/event")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
