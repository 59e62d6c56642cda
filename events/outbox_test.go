package events

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// outboxEvents are n request events r00, r01, … of one encoded size.
func outboxEvents(t testing.TB, from, n int) []event.Event {
	t.Helper()
	evs := make([]event.Event, n)
	for i := range evs {
		ev, err := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo(fmt.Sprintf("r%02d", from+i)), false))
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

func encodedSize(t testing.TB, ev event.Event) int64 {
	t.Helper()
	b, err := EncodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	return int64(len(b))
}

func ids(entries []OutboxEntry) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Event.ID()
	}
	return out
}

// outboxKinds open an outbox of each implementation bounded to maxBytes;
// reopen opens the same one again (as the next process would), or is nil
// for the memory outbox.
type outboxKind struct {
	name     string
	overhead int64 // bytes counted per event besides its JSON
	open     func(t *testing.T, maxBytes int64) (open func() Outbox)
}

func outboxKinds() []outboxKind {
	return []outboxKind{
		{name: "memory", open: func(t *testing.T, maxBytes int64) func() Outbox {
			o := NewMemoryOutbox(maxBytes, nil)
			return func() Outbox { return o }
		}},
		{name: "file", overhead: fileOutboxRecord, open: func(t *testing.T, maxBytes int64) func() Outbox {
			dir := filepath.Join(t.TempDir(), "outbox")
			return func() Outbox {
				o, err := OpenFileOutbox(dir, maxBytes, nil)
				if err != nil {
					t.Fatal(err)
				}
				return o
			}
		}},
		{name: "redis", open: func(t *testing.T, maxBytes int64) func() Outbox {
			rdb, prefix := testenv.Redis(t)
			return func() Outbox {
				return NewRedisOutbox(rdb, prefix+"{events}:outbox", RedisOutboxOptions{MaxBytes: maxBytes}, nil)
			}
		}},
	}
}

// Every outbox keeps events in order, refuses what exceeds its bound,
// removes a delivered prefix and frees its room, and (file, Redis) hands
// what it holds to the next process.
func TestOutboxes(t *testing.T) {
	for _, kind := range outboxKinds() {
		t.Run(kind.name, func(t *testing.T) {
			ctx := context.Background()
			evs := outboxEvents(t, 0, 12)
			per := encodedSize(t, evs[0]) + kind.overhead
			open := kind.open(t, 10*per)
			o := open()

			if got, err := o.Peek(ctx, 5); err != nil || len(got) != 0 {
				t.Fatalf("empty outbox: %v %v", got, err)
			}
			if n, err := o.Append(ctx, evs[:4]); n != 4 || err != nil {
				t.Fatalf("append 4: %d %v", n, err)
			}
			if n, err := o.Append(ctx, evs[4:]); n != 6 || err != nil {
				t.Fatalf("append 8 with room for 6: stored %d (%v)", n, err)
			}
			got, err := o.Peek(ctx, 3)
			if err != nil || fmt.Sprint(ids(got)) != "[r00 r01 r02]" {
				t.Fatalf("peek 3: %v %v", ids(got), err)
			}
			if got[0].Event.Type() != TypeRequestCompleted || got[0].Event.Extensions()["projectid"] != "prj_1" {
				t.Fatalf("event not kept whole: %s", got[0].Event)
			}
			if err := o.Remove(ctx, got[:2]); err != nil {
				t.Fatal(err)
			}
			if n, err := o.Append(ctx, outboxEvents(t, 10, 2)); n != 2 || err != nil {
				t.Fatalf("append into the room 2 removals made: %d %v", n, err)
			}
			if kind.name != "memory" {
				if err := o.Close(); err != nil {
					t.Fatal(err)
				}
				o = open()
			}
			defer o.Close()
			got, err = o.Peek(ctx, 100)
			if err != nil || fmt.Sprint(ids(got)) != "[r02 r03 r04 r05 r06 r07 r08 r09 r10 r11]" {
				t.Fatalf("after remove and append: %v %v", ids(got), err)
			}
			if err := o.Remove(ctx, got); err != nil {
				t.Fatal(err)
			}
			if got, err := o.Peek(ctx, 100); err != nil || len(got) != 0 {
				t.Fatalf("drained outbox: %v %v", ids(got), err)
			}
			if n, _ := o.Append(ctx, outboxEvents(t, 0, 11)); n != 10 {
				t.Fatalf("an emptied outbox has its whole room: stored %d of 11", n)
			}
		})
	}
}

// The file outbox: 0600 files in a 0700 directory, one locked file per
// process (a second process takes the next; a restarted one gets its own
// back), a torn record at the end cut off, space reclaimed.
func TestFileOutboxFiles(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data", "outbox")
	a, err := OpenFileOutbox(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(ctx, outboxEvents(t, 0, 3)); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, a.Path(): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode() != want {
			t.Fatalf("%s: mode %v, want %v (%v)", path, st.Mode(), want, err)
		}
	}
	b, err := OpenFileOutbox(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(a.Path()) != "events-0.outbox" || filepath.Base(b.Path()) != "events-1.outbox" {
		t.Fatalf("two processes share %s and %s", a.Path(), b.Path())
	}
	if got, _ := b.Peek(ctx, 10); len(got) != 0 {
		t.Fatalf("the second process sees the first one's events: %v", ids(got))
	}
	b.Close()
	a.Close()

	// A crash mid-append leaves a torn record: cut off at open.
	f, err := os.OpenFile(filepath.Join(dir, "events-0.outbox"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 1, 0, 9, 9, 9, 9, '{', '"'}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	a, err = OpenFileOutbox(dir, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	got, err := a.Peek(ctx, 10)
	if err != nil || fmt.Sprint(ids(got)) != "[r00 r01 r02]" || filepath.Base(a.Path()) != "events-0.outbox" {
		t.Fatalf("restarted: %s holds %v (%v)", a.Path(), ids(got), err)
	}
	if _, err := a.Append(ctx, outboxEvents(t, 3, 1)); err != nil {
		t.Fatal(err)
	}
	if got, _ = a.Peek(ctx, 10); fmt.Sprint(ids(got)) != "[r00 r01 r02 r03]" {
		t.Fatalf("append after the cut: %v", ids(got))
	}

	// Delivered space is reclaimed: emptied, the file is a header again;
	// mostly delivered, it is compacted.
	if err := a.Remove(ctx, got); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(a.Path()); st.Size() != fileOutboxHeader {
		t.Fatalf("emptied outbox file is %d bytes", st.Size())
	}
	many := outboxEvents(t, 0, 1)
	for len(many) < 4000 {
		many = append(many, many[0])
	}
	if _, err := a.Append(ctx, many); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(a.Path())
	full := st.Size()
	for range 3 {
		head, _ := a.Peek(ctx, 1000)
		if err := a.Remove(ctx, head); err != nil {
			t.Fatal(err)
		}
	}
	// Compacted once the delivered part (≥ 1 MiB) outgrew the rest: at
	// 2,000 of 4,000 removed.
	if st, _ := os.Stat(a.Path()); st.Size() > full/2+fileOutboxHeader {
		t.Fatalf("file not compacted: %d of %d bytes with a quarter of the events left", st.Size(), full)
	}
	if rest, _ := a.Peek(ctx, 2000); len(rest) != 1000 {
		t.Fatalf("%d events left after compaction, want 1000", len(rest))
	}
}

// One instance at a time drains the shared Redis outbox; the others get
// ErrOutboxBusy until it lets go.
func TestRedisOutboxDrainLease(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.Redis(t)
	a := NewRedisOutbox(rdb, prefix+"{events}:outbox", RedisOutboxOptions{}, nil)
	b := NewRedisOutbox(rdb, prefix+"{events}:outbox", RedisOutboxOptions{}, nil)
	if _, err := b.Append(ctx, outboxEvents(t, 0, 2)); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Peek(ctx, 10); err != nil || len(got) != 2 {
		t.Fatalf("a: %v %v", ids(got), err)
	}
	if _, err := b.Peek(ctx, 10); !errors.Is(err, ErrOutboxBusy) {
		t.Fatalf("b while a drains: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := b.Peek(ctx, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("b after a closed: %v %v", ids(got), err)
	}
	if err := b.Remove(ctx, got); err != nil {
		t.Fatal(err)
	}
	if n, err := rdb.Exists(ctx, prefix+"{events}:outbox:bytes").Result(); err != nil || n != 0 {
		t.Fatalf("byte count of an empty outbox kept: %d %v", n, err)
	}
}
