package dispatcher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/events"
)

// FileBackend appends each event as one line of structured CloudEvents JSON
// to a file, one write and one fsync per batch, rotating the file (to
// <path>.<UTC timestamp>) before it would grow beyond MaxBytes.
//
// It is idempotent on (source, id) by itself: it remembers the keys it wrote
// (loaded from the current file at open, bounded), so an event redelivered
// after a crash between the write and the acknowledgement is not written
// twice. A torn last line from a crash mid-write is cut off at open.
type FileBackend struct {
	path     string
	maxBytes int64

	mu   sync.Mutex
	f    *os.File
	size int64
	seen *keyRing
	now  func() time.Time
}

// fileIndexSize bounds the keys a FileBackend remembers.
const fileIndexSize = 1 << 20

// NewFileBackend opens (creating it and its directory) the file at path.
func NewFileBackend(path string, maxBytes int64) (*FileBackend, error) {
	b := &FileBackend{path: path, maxBytes: maxBytes, seen: newKeyRing(fileIndexSize), now: time.Now}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
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
			b.seen.add(k.Source + "\x00" + k.ID)
		}
	}
}

// Name implements Backend.
func (b *FileBackend) Name() string { return ServiceFile }

// Accepts implements Backend: the file takes every event type.
func (b *FileBackend) Accepts(string) bool { return true }

// Path is the file being written.
func (b *FileBackend) Path() string { return b.path }

// Deliver implements Backend.
func (b *FileBackend) Deliver(_ context.Context, recs []Record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil {
		return fmt.Errorf("event log %s is closed", b.path)
	}
	var buf bytes.Buffer
	var keys []string
	inBatch := map[string]bool{}
	for i := range recs {
		k := Key(&recs[i].Event)
		if b.seen.has(k) || inBatch[k] {
			continue
		}
		line, err := events.EncodeEvent(&recs[i].Event)
		if err != nil {
			return events.Permanent(err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
		keys = append(keys, k)
		inBatch[k] = true
	}
	if buf.Len() == 0 {
		return nil
	}
	if b.maxBytes > 0 && b.size > 0 && b.size+int64(buf.Len()) > b.maxBytes {
		if err := b.rotate(); err != nil {
			return err
		}
	}
	n, err := b.f.Write(buf.Bytes())
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
	return nil
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

// keyRing is a bounded set: past its size the oldest keys are forgotten.
type keyRing struct {
	size int
	m    map[string]struct{}
	ring []string
	next int
}

func newKeyRing(size int) *keyRing {
	return &keyRing{size: size, m: map[string]struct{}{}, ring: make([]string, 0, min(size, 4096))}
}

func (r *keyRing) has(k string) bool { _, ok := r.m[k]; return ok }

func (r *keyRing) add(k string) {
	if r.has(k) {
		return
	}
	if len(r.ring) < r.size {
		r.ring = append(r.ring, k)
	} else {
		delete(r.m, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % len(r.ring)
	}
	r.m[k] = struct{}{}
}
