package httpcache

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Backend stores encoded cache records. Implementations must be safe for
// concurrent use. Errors are infrastructure failures: the cache treats them
// as misses and never fails a request because of them.
type Backend interface {
	// Get returns the values of keys, nil for a missing or expired key.
	Get(ctx context.Context, keys ...string) ([][]byte, error)
	// Set stores value under key for ttl (> 0).
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// DeletePrefix deletes every key starting with prefix ("" = all keys of
	// this cache) and returns how many of them were response entries
	// (not vary records).
	DeletePrefix(ctx context.Context, prefix string) (int, error)
}

// inProcess is implemented by backends that do no I/O (Memory): their calls
// are not bounded by Options.Timeout, which would cost a timer per call and
// bound nothing.
type inProcess interface{ inProcess() }

// BackendStats is reported by backends that know their size (the in-memory
// one); it feeds the bytes/entries gauges and the evictions counter.
type BackendStats struct {
	Bytes     int64
	Entries   int64
	Evictions uint64
}

// statser is implemented by backends that can report BackendStats.
type statser interface {
	Stats() BackendStats
}

// entryOverhead approximates the bookkeeping bytes of one in-memory entry
// (map slot, list element, struct), so that many tiny entries still count.
const entryOverhead = 128

// Memory is the in-memory backend: a byte budget with LRU eviction and
// per-entry expiry. Every operation is O(1) except DeletePrefix (O(n)).
type Memory struct {
	maxBytes int64
	now      func() time.Time

	mu    sync.Mutex
	ll    *list.List // front = most recently used
	items map[string]*list.Element
	bytes int64

	evictions atomic.Uint64
}

type memItem struct {
	key     string
	value   []byte
	expires time.Time
	size    int64
}

// NewMemory returns an in-memory backend bounded by maxBytes. now is the
// clock (time.Now when nil); tests inject their own.
func NewMemory(maxBytes int64, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{maxBytes: maxBytes, now: now, ll: list.New(), items: make(map[string]*list.Element)}
}

// inProcess implements inProcess: Memory does no I/O.
func (*Memory) inProcess() {}

// Get implements Backend. A hit moves the entry to the front of the LRU list.
func (m *Memory) Get(_ context.Context, keys ...string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, k := range keys {
		el, ok := m.items[k]
		if !ok {
			continue
		}
		it := el.Value.(*memItem)
		if !now.Before(it.expires) {
			m.remove(el)
			continue
		}
		m.ll.MoveToFront(el)
		out[i] = it.value
	}
	return out, nil
}

// Set implements Backend. A value larger than the whole budget is not stored.
func (m *Memory) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	size := int64(len(key)+len(value)) + entryOverhead
	if size > m.maxBytes || ttl <= 0 {
		return nil
	}
	it := &memItem{key: key, value: value, expires: m.now().Add(ttl), size: size}
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	m.items[key] = m.ll.PushFront(it)
	m.bytes += size
	for m.bytes > m.maxBytes {
		m.remove(m.ll.Back())
		m.evictions.Add(1)
	}
	return nil
}

// DeletePrefix implements Backend.
func (m *Memory) DeletePrefix(_ context.Context, prefix string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	if prefix == "" {
		for k := range m.items {
			if isEntryKey(k) {
				n++
			}
		}
		m.ll.Init()
		clear(m.items)
		m.bytes = 0
		return n, nil
	}
	for k, el := range m.items {
		if strings.HasPrefix(k, prefix) {
			if isEntryKey(k) {
				n++
			}
			m.remove(el)
		}
	}
	return n, nil
}

// Stats reports the current size and the evictions so far.
func (m *Memory) Stats() BackendStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return BackendStats{Bytes: m.bytes, Entries: int64(len(m.items)), Evictions: m.evictions.Load()}
}

func (m *Memory) remove(el *list.Element) {
	it := el.Value.(*memItem)
	m.ll.Remove(el)
	delete(m.items, it.key)
	m.bytes -= it.size
}
