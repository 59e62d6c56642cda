package dispatcher

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/events"
)

// FileBackend appends each event as one line of structured CloudEvents JSON
// to a file, one write and one fsync per batch, rotating the file (to
// <path>.<UTC timestamp>) before it would grow beyond MaxBytes.
//
// It is idempotent on (source, id) by itself: it remembers the keys it wrote
// (loaded from the current file at open, bounded), so an event redelivered
// after a crash between the write and the acknowledgement is not written
// twice. A torn last line from a crash mid-write is cut off at open. An
// event that cannot be encoded (data held as JSON that is not valid JSON)
// is rejected alone, marked events.Permanent in a *events.BatchError; the
// others of its batch are written.
type FileBackend struct {
	path     string
	maxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
	seen *keyRing
	now  func() time.Time
	// Scratch space of Deliver, kept for the next: the lines, and the keys
	// of the batch (an event twice in one batch is written once).
	buf     []byte
	inBatch map[keyHash]struct{}
	// duplicates counts the events not written again (nil: not counted).
	duplicates prometheus.Counter
}

// keepBufBytes is the largest line buffer a FileBackend keeps between
// deliveries.
const keepBufBytes = 1 << 20

// fileIndexSize bounds the keys a FileBackend remembers.
const fileIndexSize = 1 << 20

// NewFileBackend opens (creating it, mode 0600, and its missing directories,
// mode 0700) the file at path.
func NewFileBackend(path string, maxBytes int64) (*FileBackend, error) {
	b := &FileBackend{path: path, maxBytes: maxBytes, seen: newKeyRing(fileIndexSize), now: time.Now, inBatch: map[keyHash]struct{}{}}
	// Events carry request metadata: owner-only, like the database.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("event log directory: %w", err)
	}
	if err := b.open(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *FileBackend) open() error {
	f, err := os.OpenFile(b.path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	good, err := b.index(f)
	if err != nil {
		f.Close()
		return err
	}
	if err := f.Truncate(good); err != nil { // drop a torn last line
		f.Close()
		return fmt.Errorf("repair event log: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("seek event log: %w", err)
	}
	b.f, b.size = f, good
	return nil
}

// index records the keys of the complete lines of f and returns the length
// of its complete lines.
func (b *FileBackend) index(f *os.File) (int64, error) {
	r := bufio.NewReaderSize(f, 64<<10)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return good, nil // a partial line (no newline) is not counted
		}
		if err != nil {
			return 0, fmt.Errorf("read event log: %w", err)
		}
		good += int64(len(line))
		var k struct {
			Source string `json:"source"`
			ID     string `json:"id"`
		}
		if json.Unmarshal(line, &k) == nil && k.ID != "" {
			b.seen.add(b.seen.hash(k.Source + "\x00" + k.ID))
		}
	}
}

// Name implements Backend.
func (b *FileBackend) Name() string { return ServiceFile }

// Accepts implements Backend: the file takes every event type.
func (b *FileBackend) Accepts(string) bool { return true }

// RawEvents implements RawBackend: the file holds the events as they are.
func (b *FileBackend) RawEvents() {}

// CountDuplicates implements IdempotentBackend.
func (b *FileBackend) CountDuplicates(c prometheus.Counter) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.duplicates = c
}

// Path is the file being written.
func (b *FileBackend) Path() string { return b.path }

// Deliver implements Backend.
func (b *FileBackend) Deliver(_ context.Context, recs []Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return fmt.Errorf("event log %s is closed", b.path)
	}
	buf := b.buf[:0]
	defer func() {
		if cap(buf) <= keepBufBytes {
			b.buf = buf[:0]
		}
	}()
	keys := make([]keyHash, 0, len(recs))
	clear(b.inBatch)
	var errs []error // per record, for the ones that cannot be encoded
	for i := range recs {
		k := b.seen.hash(recs[i].Key())
		if _, dup := b.inBatch[k]; dup || b.seen.has(k) {
			if b.duplicates != nil {
				b.duplicates.Inc()
			}
			continue
		}
		var err error
		if buf, err = events.AppendEvent(buf, &recs[i].Event); err != nil {
			// This event can never be written (its data is not JSON); the
			// others are.
			if errs == nil {
				errs = make([]error, len(recs))
			}
			errs[i] = events.Permanent(err)
			continue
		}
		buf = append(buf, '\n')
		keys = append(keys, k)
		b.inBatch[k] = struct{}{}
	}
	var rejected error
	if errs != nil {
		rejected = &events.BatchError{Errs: errs}
	}
	if len(buf) == 0 {
		return rejected
	}
	if b.maxBytes > 0 && b.size > 0 && b.size+int64(len(buf)) > b.maxBytes {
		if err := b.rotate(); err != nil {
			return err
		}
	}
	n, err := b.f.Write(buf)
	b.size += int64(n)
	if err != nil {
		return fmt.Errorf("write event log: %w", err)
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("fsync event log: %w", err)
	}
	for _, k := range keys {
		b.seen.add(k)
	}
	return rejected
}

func (b *FileBackend) rotate() error {
	if err := b.f.Close(); err != nil {
		return fmt.Errorf("close event log: %w", err)
	}
	b.f = nil
	to := fmt.Sprintf("%s.%s", b.path, b.now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(b.path, to); err != nil {
		return fmt.Errorf("rotate event log: %w", err)
	}
	f, err := os.OpenFile(b.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open event log: %w", err)
	}
	b.f, b.size = f, 0
	return nil
}

// Close closes the file.
func (b *FileBackend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return nil
	}
	err := b.f.Close()
	b.f = nil
	return err
}

// keyHasher turns event keys (and leases) into hashes for in-memory sets:
// 128 bits for a key, so that two keys are confused only if both 64-bit
// halves collide (a billion lookups against a million keys: ~3e-24). The
// seeds are per process; nothing hashed outlives it.
type keyHasher struct{ seeds [2]maphash.Seed }

// keyHash is a key as a keyHasher makes it.
type keyHash [2]uint64

func newKeyHasher() keyHasher {
	return keyHasher{seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}}
}

// hash is k as the sets remember it.
func (h keyHasher) hash(k string) keyHash {
	return keyHash{maphash.String(h.seeds[0], k), maphash.String(h.seeds[1], k)}
}

// lease is the 64-bit hash of a dedup lease.
func (h keyHasher) lease(l string) uint64 { return maphash.String(h.seeds[0], l) }

// keyRing is a bounded set of keys: past its size the oldest are forgotten.
//
// It holds the keys' hashes, not the keys: a ring of a million event keys
// as strings is ~150 MiB of heap that every garbage collection cycle
// traces, as hashes it is ~73 MiB that the collector never scans (no
// pointers). The ring is rebuilt from the file at open.
type keyRing struct {
	keyHasher
	size int
	m    map[keyHash]struct{}
	ring []keyHash
	next int
}

func newKeyRing(size int) *keyRing {
	return &keyRing{
		keyHasher: newKeyHasher(),
		size:      size,
		m:         map[keyHash]struct{}{},
		ring:      make([]keyHash, 0, min(size, 4096)),
	}
}

func (r *keyRing) has(h keyHash) bool { _, ok := r.m[h]; return ok }

func (r *keyRing) add(h keyHash) {
	if r.has(h) {
		return
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, h)
	} else {
		delete(r.m, r.ring[r.next])
		r.ring[r.next] = h
		r.next = (r.next + 1) % len(r.ring)
	}
	r.m[h] = struct{}{}
}
