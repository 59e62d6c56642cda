package dispatcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestKeyRingForgetsOldestFirst(t *testing.T) {
	r := newKeyRing(3)
	for _, k := range []string{"a", "b", "c", "a", "d"} { // "a" again is not a new entry
		r.add(r.hash(k))
	}
	for _, tc := range []struct {
		key  string
		want bool
	}{
		{"a", false}, // oldest, pushed out by "d"
		{"b", true},
		{"c", true},
		{"d", true},
		{"e", false},
	} {
		if got := r.has(r.hash(tc.key)); got != tc.want {
			t.Errorf("has(%q) = %v, want %v", tc.key, got, tc.want)
		}
	}
	if len(r.m) != 3 || len(r.ring) != 3 {
		t.Errorf("%d keys in the map, %d in the ring; want 3 and 3", len(r.m), len(r.ring))
	}
}

// A full ring (the file backend remembers up to fileIndexSize event keys)
// lives as long as the process: it must stay small, and hold nothing that
// the garbage collector has to scan.
func TestKeyRingFullSize(t *testing.T) {
	before := heapStats()
	r := newKeyRing(fileIndexSize)
	for i := range fileIndexSize {
		// The shape of a real key: source, NUL, a UUID.
		r.add(r.hash(fmt.Sprintf("https://llm-proxy.example/proxy\x00%08x-8b2e-4c55-9a53-%012x", i, i)))
	}
	after := heapStats()
	runtime.KeepAlive(r)
	if len(r.m) != fileIndexSize {
		t.Fatalf("%d keys remembered, want %d", len(r.m), fileIndexSize)
	}
	heap, scan := mib(after.live-before.live), mib(after.scannable-before.scannable)
	t.Logf("%d keys: %.1f MiB of heap, %.1f MiB of it scannable", len(r.m), heap, scan)
	// As strings the keys took ~150 MiB, all of it traced by every
	// collection (~57 ms of marking per cycle); as 128-bit hashes they
	// take ~70 MiB and none of it is scanned (~2 ms per cycle).
	if heap > 96 {
		t.Errorf("a full ring holds %.1f MiB of heap, want at most 96", heap)
	}
	if scan > 1 {
		t.Errorf("a full ring holds %.1f MiB of scannable heap, want none", scan)
	}
}

type heapFigures struct{ live, scannable uint64 }

// heapStats collects garbage and reports the live heap and the part of it
// that holds pointers (which every collection cycle traces).
func heapStats() heapFigures {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}
	metrics.Read(s)
	return heapFigures{live: s[0].Value.Uint64(), scannable: s[1].Value.Uint64()}
}

func mib(b uint64) float64 { return float64(int64(b)) / (1 << 20) }

// A dispatcher over the file backend leaves deduplication to the file,
// which remembers what it wrote across restarts; duplicates are counted
// either way.
func TestFileBackendIsTheDispatchersDeduplicator(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	deliver := func(d *Dispatcher, ids ...string) {
		t.Helper()
		evs := make([]event.Event, len(ids))
		for i, id := range ids {
			evs[i] = requestEvent(t, id)
		}
		for i, err := range d.DeliverBatch(context.Background(), evs) {
			if err != nil {
				t.Fatalf("deliver %s: %v", ids[i], err)
			}
		}
	}
	d1 := fileDispatcher(t, path)
	if _, ok := d1.dedup.(claimAll); !ok {
		t.Fatalf("dispatcher over a file backend deduplicates with %T as well", d1.dedup)
	}
	deliver(d1, "a", "b")
	deliver(d1, "b", "c") // b redelivered
	if got := testutil.ToFloat64(d1.duplicates); got != 1 {
		t.Errorf("duplicates before the restart: %v, want 1", got)
	}

	d2 := fileDispatcher(t, path) // a new process over the same file
	deliver(d2, "a", "d")
	if got := testutil.ToFloat64(d2.duplicates); got != 1 {
		t.Errorf("duplicates after the restart: %v, want 1", got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if n := strings.Count(string(b), `"id":"`+id+`"`); n != 1 {
			t.Errorf("event %s written %d times, want once", id, n)
		}
	}
}
