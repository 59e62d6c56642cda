package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/shared/filelock"
)

// The file outbox's layout: a header (magic, then the offset of the oldest
// undelivered record), then records, each a 4-byte length, a 4-byte CRC-32C
// of the payload and the payload (an event's structured-mode JSON), all
// big-endian. A torn record at the end (a crash mid-append) fails its
// length or CRC check and is cut off when the file is opened.
const (
	fileOutboxMagic  = "LPOUTBX1"
	fileOutboxHeader = 16
	fileOutboxRecord = 8 // record header
	// FileOutboxSlots is how many processes can share one outbox directory,
	// each with its own locked file (events-<n>.outbox).
	FileOutboxSlots = 64
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// FileOutbox is an Outbox in a file: the one of `llm-proxy serve`, under
// DATA_DIR. Every Append and Remove is fsynced. The file is locked (flock)
// while open, so processes sharing a directory each take their own file: the
// first of events-0.outbox … events-63.outbox that no live process holds. A
// restarted process takes the file it held before (the lowest free one) and
// delivers what it kept. Files are 0600 in a 0700 directory.
type FileOutbox struct {
	mu   sync.Mutex
	f    *os.File
	path string
	max  int64
	head int64 // offset of the oldest record
	tail int64 // end of the last record
	log  *slog.Logger
}

// OpenFileOutbox opens (creating it and dir when needed) the first free
// outbox file in dir, bounded to maxBytes of records (0 or less: the
// default). log may be nil.
func OpenFileOutbox(dir string, maxBytes int64, log *slog.Logger) (*FileOutbox, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultOutboxMaxBytes
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("event outbox directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("event outbox directory: %w", err)
	}
	for slot := range FileOutboxSlots {
		path := filepath.Join(dir, "events-"+strconv.Itoa(slot)+".outbox")
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("event outbox: %w", err)
		}
		locked, err := filelock.TryLock(f)
		if errors.Is(err, filelock.ErrUnsupported) { // one process per outbox directory there
			locked, err = true, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("event outbox: lock %s: %w", path, err)
		}
		if !locked {
			f.Close()
			continue
		}
		o := &FileOutbox{f: f, path: path, max: maxBytes, log: log}
		if err := o.load(); err != nil {
			f.Close()
			return nil, err
		}
		return o, nil
	}
	return nil, fmt.Errorf("event outbox: all %d files in %s are held by other processes", FileOutboxSlots, dir)
}

// Path is the file this outbox holds.
func (o *FileOutbox) Path() string { return o.path }

// load reads the header (writing one into a new file) and finds the end of
// the last whole record.
func (o *FileOutbox) load() error {
	if err := o.f.Chmod(0o600); err != nil {
		return fmt.Errorf("event outbox: %w", err)
	}
	st, err := o.f.Stat()
	if err != nil {
		return fmt.Errorf("event outbox: %w", err)
	}
	if st.Size() < fileOutboxHeader {
		o.head, o.tail = fileOutboxHeader, fileOutboxHeader
		return o.reset()
	}
	var hdr [fileOutboxHeader]byte
	if _, err := o.f.ReadAt(hdr[:], 0); err != nil {
		return fmt.Errorf("event outbox: read %s: %w", o.path, err)
	}
	if string(hdr[:8]) != fileOutboxMagic {
		return fmt.Errorf("event outbox: %s is not an outbox file", o.path)
	}
	o.head = int64(binary.BigEndian.Uint64(hdr[8:]))
	if o.head < fileOutboxHeader || o.head > st.Size() {
		return fmt.Errorf("event outbox: %s has a bad head offset %d", o.path, o.head)
	}
	o.tail = o.head
	r := io.NewSectionReader(o.f, 0, st.Size())
	for {
		_, size, err := o.readRecord(r, o.tail, false)
		if err != nil {
			break
		}
		o.tail += size
	}
	if o.tail < st.Size() {
		o.log.Warn("event outbox: cut off a torn record at the end (a crash mid-write)", "path", o.path, "bytes", st.Size()-o.tail)
		if err := o.f.Truncate(o.tail); err != nil {
			return fmt.Errorf("event outbox: truncate %s: %w", o.path, err)
		}
	}
	if o.tail > o.head {
		o.log.Info("event outbox holds events from an earlier run; delivering them first", "path", o.path, "bytes", o.tail-o.head)
	}
	return nil
}

// readRecord reads the record at off: its payload (when payload is set)
// and its size with the header. A short or corrupt record is an error.
func (o *FileOutbox) readRecord(r io.ReaderAt, off int64, payload bool) ([]byte, int64, error) {
	var h [fileOutboxRecord]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return nil, 0, err
	}
	n := int64(binary.BigEndian.Uint32(h[:4]))
	b := make([]byte, n)
	if _, err := r.ReadAt(b, off+fileOutboxRecord); err != nil {
		return nil, 0, err
	}
	if crc32.Checksum(b, crc32c) != binary.BigEndian.Uint32(h[4:]) {
		return nil, 0, errors.New("record checksum mismatch")
	}
	if !payload {
		b = nil
	}
	return b, fileOutboxRecord + n, nil
}

// Append writes what fits in one write and fsyncs it.
func (o *FileOutbox) Append(_ context.Context, evs []event.Event) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return 0, ErrClosed
	}
	recs, encErr := encodeForOutbox(evs, o.max-(o.tail-o.head), fileOutboxRecord)
	if len(recs) == 0 {
		return 0, encErr
	}
	var buf bytes.Buffer
	for _, b := range recs {
		var h [fileOutboxRecord]byte
		binary.BigEndian.PutUint32(h[:4], uint32(len(b)))
		binary.BigEndian.PutUint32(h[4:], crc32.Checksum(b, crc32c))
		buf.Write(h[:])
		buf.Write(b)
	}
	if _, err := o.f.WriteAt(buf.Bytes(), o.tail); err != nil {
		_ = o.f.Truncate(o.tail)
		return 0, fmt.Errorf("event outbox: write %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		_ = o.f.Truncate(o.tail)
		return 0, fmt.Errorf("event outbox: sync %s: %w", o.path, err)
	}
	o.tail += int64(buf.Len())
	return len(recs), encErr
}

// Peek reads up to n records from the head; a ref is the offset after its
// record.
func (o *FileOutbox) Peek(_ context.Context, n int) ([]OutboxEntry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil, ErrClosed
	}
	var out []OutboxEntry
	for off := o.head; off < o.tail && len(out) < n; {
		b, size, err := o.readRecord(o.f, off, true)
		if err != nil {
			return out, fmt.Errorf("event outbox: read %s at %d: %w", o.path, off, err)
		}
		off += size
		if e, ok := decodeEntry(o.log, strconv.FormatInt(off, 10), b); ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// Remove moves the head past the last of entries and fsyncs it; an emptied
// file is truncated, and one whose delivered part outgrew the rest is
// compacted.
func (o *FileOutbox) Remove(_ context.Context, entries []OutboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	off, err := strconv.ParseInt(entries[len(entries)-1].Ref, 10, 64)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return ErrClosed
	}
	if err != nil || off <= o.head || off > o.tail {
		return fmt.Errorf("event outbox: ref %q is not in %s", entries[len(entries)-1].Ref, o.path)
	}
	o.head = off
	switch {
	case o.head == o.tail:
		o.head, o.tail = fileOutboxHeader, fileOutboxHeader
		return o.reset()
	case o.head-fileOutboxHeader >= 1<<20 && o.head-fileOutboxHeader >= o.tail-o.head:
		return o.compact()
	}
	return o.writeHead()
}

// reset empties the file to a header.
func (o *FileOutbox) reset() error {
	if err := o.f.Truncate(fileOutboxHeader); err != nil {
		return fmt.Errorf("event outbox: truncate %s: %w", o.path, err)
	}
	return o.writeHead()
}

func (o *FileOutbox) writeHead() error {
	var hdr [fileOutboxHeader]byte
	copy(hdr[:], fileOutboxMagic)
	binary.BigEndian.PutUint64(hdr[8:], uint64(o.head))
	if _, err := o.f.WriteAt(hdr[:], 0); err != nil {
		return fmt.Errorf("event outbox: write %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("event outbox: sync %s: %w", o.path, err)
	}
	return nil
}

// compact moves the undelivered records to the front of the file: the head
// is set to the header first (so a crash mid-copy at worst redelivers), then
// the records are copied and the file is cut.
func (o *FileOutbox) compact() error {
	live := make([]byte, o.tail-o.head)
	if _, err := o.f.ReadAt(live, o.head); err != nil {
		return fmt.Errorf("event outbox: read %s: %w", o.path, err)
	}
	// Write the records behind the header first, then the head: the
	// records at the old head stay intact until the copy is synced.
	if o.head-fileOutboxHeader < int64(len(live)) {
		return o.writeHead() // overlapping copy: not worth it yet
	}
	if _, err := o.f.WriteAt(live, fileOutboxHeader); err != nil {
		return fmt.Errorf("event outbox: write %s: %w", o.path, err)
	}
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("event outbox: sync %s: %w", o.path, err)
	}
	o.head, o.tail = fileOutboxHeader, fileOutboxHeader+int64(len(live))
	if err := o.writeHead(); err != nil {
		return err
	}
	if err := o.f.Truncate(o.tail); err != nil {
		return fmt.Errorf("event outbox: truncate %s: %w", o.path, err)
	}
	return nil
}

// Close unlocks and closes the file; its events stay in it.
func (o *FileOutbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close() // releases the flock
	o.f = nil
	return err
}
