package ratelimit

import (
	"sort"
	"time"
)

// ring is the in-memory state of one sliding window: one slot per counted
// sub-bucket (Buckets+1 of them: the current one and the Buckets before it).
// It keeps the window's total and its newest charged bucket as it goes, so
// that an admission reads them without scanning the slots (with limits on
// every axis, scans were most of an in-memory admission's time).
type ring struct {
	kind   kind
	slots  []slot
	last   int64 // newest bucket index seen; time never goes back for a ring
	sum    int64 // usage of the slots counted at bucket last
	newest int64 // newest counted bucket holding usage (-1: none)
}

type slot struct{ idx, n int64 }

func newRing(k kind) *ring {
	return &ring{kind: k, slots: make([]slot, specs[k].Buckets+1), last: -1, newest: -1}
}

// bucketIndex is the sub-bucket of t for spec s.
func bucketIndex(t time.Time, s spec) int64 {
	return t.UnixMilli() / s.Bucket().Milliseconds()
}

// advance returns the current bucket index: the bucket of now, or the newest
// bucket already seen when now is behind it (clock steps back). The buckets
// that leave the window leave the total.
func (r *ring) advance(now time.Time) int64 {
	cur := max(bucketIndex(now, specs[r.kind]), r.last)
	if cur == r.last {
		return cur
	}
	nb := specs[r.kind].Buckets
	first := cur - nb // oldest bucket counted at cur
	switch {
	case r.last < 0:
	case r.last < first: // all of it has left
		r.sum, r.newest = 0, -1
	default:
		for b := r.last - nb; b < first; b++ {
			if sl := &r.slots[b%int64(len(r.slots))]; sl.idx == b {
				r.sum -= sl.n
				*sl = slot{}
			}
		}
		if r.newest < first {
			r.newest = -1
		}
	}
	r.last = cur
	return cur
}

func (r *ring) live(s slot, cur int64) bool {
	return s.n != 0 && s.idx <= cur && s.idx >= cur-specs[r.kind].Buckets
}

// idle reports whether nothing is counted any more at bucket cur.
func (r *ring) idle(cur int64) bool { return r.last < cur-specs[r.kind].Buckets }

// add charges n to bucket cur (the one advance returned).
func (r *ring) add(cur, n int64) {
	i := cur % int64(len(r.slots))
	if r.slots[i].idx != cur {
		r.slots[i] = slot{idx: cur}
	}
	r.slots[i].n += n
	r.sum += n
	if r.slots[i].n > 0 && cur > r.newest {
		r.newest = cur
	}
}

// refund takes back up to n from bucket idx while it is still counted.
func (r *ring) refund(idx, cur, n int64) {
	i := idx % int64(len(r.slots))
	s := r.slots[i]
	if s.idx != idx || !r.live(s, cur) {
		return
	}
	d := min(n, s.n)
	r.slots[i].n -= d
	r.sum -= d
	if r.slots[i].n == 0 && idx == r.newest { // rare: the newest bucket emptied
		r.newest = -1
		for _, sl := range r.slots {
			if r.live(sl, cur) && sl.n > 0 && sl.idx > r.newest {
				r.newest = sl.idx
			}
		}
	}
}

// expiry is when bucket idx stops being counted.
func expiry(idx int64, s spec) int64 { return (idx + s.Buckets + 1) * s.Bucket().Milliseconds() }

// retryAfter is how long until need units have left the window.
func (r *ring) retryAfter(cur, need int64, now time.Time) time.Duration {
	s := specs[r.kind]
	live := make([]slot, 0, len(r.slots))
	for _, sl := range r.slots {
		if r.live(sl, cur) {
			live = append(live, sl)
		}
	}
	sort.Slice(live, func(i, j int) bool { return live[i].idx < live[j].idx })
	var freed int64
	for _, sl := range live {
		freed += sl.n
		if freed >= need {
			return time.Duration(expiry(sl.idx, s)-now.UnixMilli()) * time.Millisecond
		}
	}
	return s.Size
}

// resetIn is how long until the window is empty again.
func (r *ring) resetIn(cur int64, now time.Time) time.Duration {
	if r.newest < 0 || r.newest < cur-specs[r.kind].Buckets {
		return 0
	}
	return time.Duration(expiry(r.newest, specs[r.kind])-now.UnixMilli()) * time.Millisecond
}
