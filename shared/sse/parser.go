package sse

import (
	"bytes"
	"errors"
)

// Event is one parsed Server-Sent Event.
type Event struct {
	Event string // the "event:" field ("" means "message")
	Data  []byte // "data:" lines joined with "\n"; valid until the next Feed
	ID    string
	// HasData reports whether the event had at least one data line; an event
	// without one (e.g. only comments) is not dispatched by browsers.
	HasData bool
}

// ErrEventTooLarge is returned by Feed when one event exceeds the parser's
// bound; the parser is then unusable and the caller should pass the rest of
// the stream through unparsed.
var ErrEventTooLarge = errors.New("sse: event exceeds the size limit")

// A stream holds its parser for its whole life: a buffer that an unusually
// large event grew is given back once the event has passed.
const (
	initialBuffer = 2 << 10  // size of a buffer allocated to hold a partial event
	shrinkAbove   = 64 << 10 // a larger buffer is replaced once it is nearly empty
)

// Parser splits an SSE byte stream into events incrementally: feed it bytes
// as they arrive, and it calls emit for every complete event with the raw
// bytes of the event (its lines and the blank line that ends it) and the
// parsed fields. It handles \n, \r\n and \r line ends (also split across
// Feed calls), multi-line data, comments and a leading BOM. One event may
// not exceed the bound given to NewParser.
//
// The parser copies only the bytes of an incomplete event; complete events
// are handed to emit as slices of the fed bytes (or of that copy).
type Parser struct {
	max int
	// buf[start:pos] are the complete lines of the current event (and a
	// leading BOM); buf[pos:] is not parsed yet.
	buf   []byte
	start int
	pos   int
	scan  int // buf[pos:scan] holds no line end (a long line is not rescanned)

	event   string
	id      string
	hasData bool
	// A single data line is buf[dataOff:dataEnd]; from the second one on,
	// the joined value is built in data (multi).
	dataOff, dataEnd int
	data             []byte
	multi            bool

	skipLF  bool // the previous line ended with \r: a leading \n belongs to it
	started bool
	broken  bool
}

// NewParser returns a parser whose events may be at most maxEvent bytes
// (raw); 0 means 1 MiB.
func NewParser(maxEvent int) *Parser {
	if maxEvent <= 0 {
		maxEvent = 1 << 20
	}
	return &Parser{max: maxEvent}
}

// Feed consumes b and calls emit for each event it completes. raw and
// ev.Data are only valid during the call. The parser does not keep b: when
// it holds no incomplete event, it parses b in place and copies only the
// incomplete event at its end.
func (p *Parser) Feed(b []byte, emit func(raw []byte, ev Event)) error {
	if p.broken {
		return ErrEventTooLarge
	}
	own := p.buf
	if len(own) == 0 {
		p.buf = b[:len(b):len(b)]
	} else {
		p.buf = append(p.buf, b...)
		own = p.buf
	}
	err := p.parse(emit)
	p.keep(own)
	return err
}

// parse dispatches the complete events in buf and keeps the rest.
func (p *Parser) parse(emit func(raw []byte, ev Event)) error {
	if !p.started {
		held := p.buf[p.start:]
		if len(held) == 0 || len(held) < len(bom) && bytes.HasPrefix(bom, held) {
			return nil // maybe a BOM split across calls
		}
		p.started = true
		if bytes.HasPrefix(held, bom) {
			p.pos += len(bom)
		}
	}
	f := newFinder()
	for {
		if p.skipLF && p.pos < len(p.buf) {
			p.skipLF = false
			if p.buf[p.pos] == '\n' {
				p.pos++
				continue
			}
		}
		i, n := f.next(p.buf, max(p.pos, p.scan))
		if i < 0 {
			p.scan = len(p.buf)
			break
		}
		line := p.buf[p.pos:i]
		lineStart := p.pos
		p.pos = i + n
		// A CR that ends the fed bytes may be the first half of a CRLF.
		p.skipLF = n == 1 && p.buf[i] == '\r' && p.pos == len(p.buf)
		if len(line) == 0 {
			p.dispatch(emit)
			continue
		}
		p.field(line, lineStart)
		if p.pos-p.start > p.max {
			p.broken = true
			return ErrEventTooLarge
		}
	}
	if len(p.buf)-p.start > p.max {
		p.broken = true
		return ErrEventTooLarge
	}
	return nil
}

// keep moves the bytes not yet dispatched, buf[start:], to the front of
// own (the parser's buffer, which buf may share) and makes it the buffer. A
// buffer that an unusually large event grew is replaced once it is nearly
// empty again.
func (p *Parser) keep(own []byte) {
	d := p.start
	rest := p.buf[d:]
	switch {
	case len(rest) == 0 && cap(own) > shrinkAbove:
		own = nil
	case cap(own) > shrinkAbove && len(rest) <= initialBuffer/2:
		own = make([]byte, 0, initialBuffer)
	case own == nil && len(rest) > 0:
		own = make([]byte, 0, max(initialBuffer, len(rest)))
	}
	p.buf = append(own[:0], rest...) // memmove: rest may lie in own
	p.start = 0
	p.pos -= d
	p.scan = max(p.scan-d, 0)
	if p.hasData && !p.multi {
		p.dataOff -= d
		p.dataEnd -= d
	}
}

// Pending returns the bytes of an incomplete event (to pass through at the
// end of a stream). The parser keeps them.
func (p *Parser) Pending() []byte {
	return bytes.Clone(p.buf[p.start:])
}

func (p *Parser) field(line []byte, lineStart int) {
	if IsComment(line) {
		return
	}
	name, value := Field(line)
	switch string(name) {
	case "data":
		switch {
		case !p.hasData:
			p.dataOff = lineStart + len(line) - len(value)
			p.dataEnd = lineStart + len(line)
		case !p.multi:
			p.data = append(append(append(p.data[:0], p.buf[p.dataOff:p.dataEnd]...), '\n'), value...)
			p.multi = true
		default:
			p.data = append(append(p.data, '\n'), value...)
		}
		p.hasData = true
	case "event":
		p.event = string(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id = string(value)
		}
	}
}

func (p *Parser) dispatch(emit func(raw []byte, ev Event)) {
	var data []byte
	switch {
	case p.multi:
		data = p.data
	case p.hasData:
		data = p.buf[p.dataOff:p.dataEnd:p.dataEnd]
	}
	emit(p.buf[p.start:p.pos:p.pos], Event{Event: p.event, Data: data, ID: p.id, HasData: p.hasData})
	p.start = p.pos
	p.event = "" // the id is kept: it is the stream's last event id
	p.hasData, p.multi = false, false
	if cap(p.data) > shrinkAbove {
		p.data = nil
	}
}
