package usage

import (
	"bytes"
	"errors"
	"io"
	"slices"
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

// Sizes of the buffer FeedFrom reads into. A stream holds its parser for
// its whole life, so the buffer starts small (one read of a few events) and
// grows only while an event is larger; it is given back once such an event
// has passed.
const (
	minReadRoom   = 512      // FeedFrom reads at least this much at once
	initialBuffer = 2 << 10  // the buffer's first size
	shrinkAbove   = 64 << 10 // a larger buffer is replaced once it is nearly empty
)

var bom = []byte("\xEF\xBB\xBF")

// Parser splits an SSE byte stream into events incrementally: feed it bytes
// as they arrive (Feed), or let it read them (FeedFrom), and it calls emit
// for every complete event with the raw bytes of the event (its lines and
// the blank line that ends it) and the parsed fields. It handles \n, \r\n
// and \r line ends (also split across calls), multi-line data, comments and
// a leading BOM. One event may not exceed the bound given to NewParser.
//
// The parser keeps one buffer: the bytes of the current, incomplete event.
// Complete events are handed to emit as slices of it, not copied.
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
// ev.Data are only valid during the call.
func (p *Parser) Feed(b []byte, emit func(raw []byte, ev Event)) error {
	if p.broken {
		return ErrEventTooLarge
	}
	p.buf = append(p.buf, b...)
	return p.parse(emit)
}

// FeedFrom reads once from r straight into the parser's buffer and parses
// what arrived as Feed does. It returns the bytes read, r's error, and the
// parse error (ErrEventTooLarge) apart: events completed before either are
// emitted first. A broken parser reads nothing.
func (p *Parser) FeedFrom(r io.Reader, emit func(raw []byte, ev Event)) (n int, readErr, parseErr error) {
	if p.broken {
		return 0, nil, ErrEventTooLarge
	}
	if p.buf == nil {
		p.buf = make([]byte, 0, initialBuffer)
	} else if cap(p.buf)-len(p.buf) < minReadRoom {
		p.buf = slices.Grow(p.buf, minReadRoom)
	}
	n, readErr = r.Read(p.buf[len(p.buf):cap(p.buf)])
	if n < 0 || n > cap(p.buf)-len(p.buf) {
		return 0, errors.New("sse: reader returned an invalid count"), nil
	}
	p.buf = p.buf[:len(p.buf)+n]
	if n > 0 {
		parseErr = p.parse(emit)
	}
	return n, readErr, parseErr
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
	for {
		if p.skipLF && p.pos < len(p.buf) {
			p.skipLF = false
			if p.buf[p.pos] == '\n' {
				p.pos++
				continue
			}
		}
		from := max(p.pos, p.scan)
		i := bytes.IndexAny(p.buf[from:], "\r\n")
		if i < 0 {
			p.scan = len(p.buf)
			break
		}
		i += from
		line := p.buf[p.pos:i]
		end := i + 1
		if p.buf[i] == '\r' {
			if i+1 < len(p.buf) {
				if p.buf[i+1] == '\n' {
					end++
				}
			} else {
				p.skipLF = true
			}
		}
		lineStart := p.pos
		p.pos = end
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
	p.compact()
	if len(p.buf) > p.max {
		p.broken = true
		return ErrEventTooLarge
	}
	return nil
}

// compact moves the current event to the front of the buffer, and replaces
// a large buffer that an event outgrew once it is nearly empty again.
func (p *Parser) compact() {
	if p.start == 0 {
		return
	}
	d := p.start
	rest := p.buf[d:]
	if cap(p.buf) > shrinkAbove && len(rest) <= initialBuffer/2 {
		p.buf = append(make([]byte, 0, initialBuffer), rest...)
	} else {
		p.buf = p.buf[:copy(p.buf, rest)]
	}
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
	if line[0] == ':' {
		return // comment
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
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
