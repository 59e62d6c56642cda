package audit

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Defaults of the denial aggregation.
const (
	defaultDenialWindow  = time.Minute
	defaultDenialSources = 1000
	denialFlushTimeout   = 5 * time.Second
)

// otherSources is the window key shared by clients beyond DenialSources.
const otherSources = "\x00other"

// denials aggregates repeated denials per client, action and reason: the first
// denial of a window is written at once, the rest of the window only counted,
// and one summary record with the count is written when the window ends (or
// the recorder closes). An attacker repeating denied requests so writes at
// most two records per window per client and reason, and at most DenialSources clients
// have a window of their own: beyond that, all share one.
type denials struct {
	r       *Recorder
	window  time.Duration
	sources int

	mu     sync.Mutex
	open   map[string]*denialWindow
	timer  *time.Timer
	closed bool
}

type denialWindow struct {
	start, last time.Time
	count       int                 // denials after the first, not written one by one
	latest      llmproxy.AuditEvent // the last one counted
	shared      bool                // the window of the clients beyond DenialSources
}

func newDenials(r *Recorder, window time.Duration, sources int) *denials {
	if window <= 0 {
		window = defaultDenialWindow
	}
	if sources <= 0 {
		sources = defaultDenialSources
	}
	return &denials{r: r, window: window, sources: sources, open: map[string]*denialWindow{}}
}

// RecordDenial records a denied attempt (e.Outcome denied, e.g. a request
// without a valid management token), aggregating repeats from the same
// client IP, action and reason: within DenialWindow only the first is written; the
// others are counted into one summary record (details "aggregated": true,
// "count", "first_at", "last_at") written when the window ends.
func (r *Recorder) RecordDenial(ctx context.Context, e llmproxy.AuditEvent) error {
	if !r.Enabled() {
		return nil
	}
	if !r.denials.add(e) {
		return nil
	}
	return r.Record(ctx, e)
}

// add reports whether e opens a window (and is to be written now); it
// writes the summary of the window e ends, if any.
func (d *denials) add(e llmproxy.AuditEvent) bool {
	now := d.r.clock()
	d.mu.Lock()
	write, due := d.addLocked(e, now)
	d.mu.Unlock()
	d.flush(due)
	return write
}

func (d *denials) addLocked(e llmproxy.AuditEvent, now time.Time) (bool, []*denialWindow) {
	if d.closed {
		return true, nil
	}
	var due []*denialWindow
	kind := e.Action + "\x00" + llmproxy.BoundText(e.Reason, llmproxy.MaxAuditReasonBytes)
	key := e.ClientIP + "\x00" + kind
	if _, ok := d.open[key]; !ok && len(d.open) >= d.sources {
		key = otherSources + "\x00" + kind // the table is full: share one window
	}
	if w, ok := d.open[key]; ok {
		if now.Sub(w.start) < d.window {
			w.count++
			w.last, w.latest = now, e
			return false, nil
		}
		delete(d.open, key)
		due = append(due, w)
	}
	d.open[key] = &denialWindow{start: now, last: now, latest: e, shared: key[0] == 0}
	if d.timer == nil {
		d.timer = time.AfterFunc(d.window, d.tick)
	}
	return true, due
}

// tick writes the summaries of the windows that ended and re-arms itself
// while windows are open.
func (d *denials) tick() {
	now := d.r.clock()
	d.mu.Lock()
	var due []*denialWindow
	for k, w := range d.open {
		if now.Sub(w.start) >= d.window {
			delete(d.open, k)
			due = append(due, w)
		}
	}
	d.timer = nil
	if len(d.open) > 0 && !d.closed {
		d.timer = time.AfterFunc(d.window/2, d.tick)
	}
	d.mu.Unlock()
	d.flush(due)
}

// close writes the summaries of every open window.
func (d *denials) close() {
	d.mu.Lock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	due := make([]*denialWindow, 0, len(d.open))
	for k, w := range d.open {
		delete(d.open, k)
		due = append(due, w)
	}
	d.mu.Unlock()
	d.flush(due)
}

// flush writes one summary record per window that counted repeats.
func (d *denials) flush(due []*denialWindow) {
	for _, w := range due {
		if w.count == 0 {
			continue
		}
		e := w.latest
		e.ID, e.Seq, e.Hash, e.PrevHash, e.KeyID = uuid.NewString(), 0, "", "", ""
		e.Timestamp = d.r.clock().UTC().Truncate(time.Microsecond)
		e.Details = map[string]any{
			"aggregated": true, "count": w.count,
			"first_at": w.start.UTC().Format(time.RFC3339Nano), "last_at": w.last.UTC().Format(time.RFC3339Nano),
			"window_seconds": int(d.window / time.Second),
		}
		if w.shared {
			e.ClientIP = ""
			e.Details["other_sources"] = true
		}
		ctx, cancel := context.WithTimeout(context.Background(), denialFlushTimeout)
		_ = d.r.Record(ctx, e)
		cancel()
	}
}
