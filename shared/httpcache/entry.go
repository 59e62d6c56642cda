package httpcache

import (
	"encoding/binary"
	"errors"
	"net/http"
	"sort"
	"time"
)

// entry is one stored response.
type entry struct {
	Status   int
	Stream   bool // Body holds raw SSE bytes
	StoredAt time.Time
	Expires  time.Time
	Header   http.Header // only the headers safe to replay (see storableHeader)
	Body     []byte
}

// varyRecord lists the request header names the entries of a base key vary
// on (canonical, sorted).
type varyRecord struct {
	Names []string
}

const (
	recEntry byte = 'E'
	recVary  byte = 'V'
	recVer   byte = 1
)

var errCorrupt = errors.New("corrupt cache record")

func (e *entry) encode() []byte {
	size := 32 + len(e.Body)
	for k, vs := range e.Header {
		size += len(k) + 4
		for _, v := range vs {
			size += len(v) + 4
		}
	}
	b := make([]byte, 0, size)
	b = append(b, recEntry, recVer)
	var flags byte
	if e.Stream {
		flags |= 1
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.StoredAt.UnixNano())
	b = binary.AppendVarint(b, e.Expires.UnixNano())
	keys := make([]string, 0, len(e.Header))
	for k := range e.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		vs := e.Header[k]
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(e.Body)))
	return append(b, e.Body...)
}

func (v *varyRecord) encode() []byte {
	b := []byte{recVary, recVer}
	b = binary.AppendUvarint(b, uint64(len(v.Names)))
	for _, n := range v.Names {
		b = appendString(b, n)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads the fields written by encode. The first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) count() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) { // every element takes at least one byte
		d.err = errCorrupt
		return 0
	}
	return int(n)
}

// decodeRecord decodes a stored value into an *entry or a *varyRecord. The
// entry's Body aliases b.
func decodeRecord(b []byte) (*entry, *varyRecord, error) {
	if len(b) < 2 || b[1] != recVer {
		return nil, nil, errCorrupt
	}
	d := &decoder{b: b[2:]}
	switch b[0] {
	case recVary:
		n := d.count()
		v := &varyRecord{Names: make([]string, 0, n)}
		for range n {
			v.Names = append(v.Names, string(d.bytes()))
		}
		if d.err != nil {
			return nil, nil, d.err
		}
		return nil, v, nil
	case recEntry:
		if len(d.b) < 1 {
			return nil, nil, errCorrupt
		}
		e := &entry{Stream: d.b[0]&1 != 0}
		d.b = d.b[1:]
		e.Status = int(d.uvarint())
		e.StoredAt = time.Unix(0, d.varint())
		e.Expires = time.Unix(0, d.varint())
		nh := d.count()
		e.Header = make(http.Header, nh)
		for range nh {
			k := string(d.bytes())
			nv := d.count()
			vs := make([]string, 0, nv)
			for range nv {
				vs = append(vs, string(d.bytes()))
			}
			e.Header[k] = vs
		}
		e.Body = d.bytes()
		if d.err != nil {
			return nil, nil, d.err
		}
		if e.Status < 100 || e.Status > 999 {
			return nil, nil, errCorrupt
		}
		return e, nil, nil
	}
	return nil, nil, errCorrupt
}
