package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, []event.Event) error { return nil }

// BenchmarkEmitterPaced is the emitter under a steady request rate (one
// event every 200 µs, 5,000/s), as a proxy under moderate load sees it:
// cpu-ns/event is the process CPU per event, including waking the worker.
// (BenchmarkRequestCompleted sends as fast as it can, so the worker never
// sleeps between events and wakes cost nothing there.)
func BenchmarkEmitterPaced(b *testing.B) {
	e := NewEmitter(discardPublisher{}, EmitterOptions{BufferSize: 1 << 14, BatchSize: 100, FlushInterval: 100 * time.Millisecond}, nil)
	infos := make([]string, 64)
	for i := range infos {
		infos[i] = fmt.Sprintf("r%d", i)
	}
	info := sampleInfo("r")
	start := testenv.ProcessCPU(b)
	next := time.Now()
	n := 0
	for b.Loop() {
		next = next.Add(200 * time.Microsecond)
		time.Sleep(time.Until(next))
		info.RequestID = infos[n%len(infos)]
		e.RequestCompleted(info)
		n++
	}
	if err := e.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64((testenv.ProcessCPU(b)-start).Nanoseconds())/float64(n), "cpu-ns/event")
}
