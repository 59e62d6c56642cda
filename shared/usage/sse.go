package usage

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

// Parser splits an SSE byte stream into events incrementally: feed it bytes
// as they arrive, and it calls emit for every complete event with the raw
// bytes of the event (its lines and the blank line that ends it) and the
// parsed fields. It handles \n, \r\n and \r line ends (also split across
// Feed calls), multi-line data, comments and a leading BOM. One event may not
// exceed the bound given to NewParser.
type Parser struct {
	max     int
	buf     []byte // bytes not yet consumed (an incomplete line)
	raw     []byte // raw bytes of the current event so far
	data    []byte
	event   string
	id      string
	hasData bool
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
	if !p.started && len(p.buf) > 0 {
		if len(p.buf) < 3 && bytes.HasPrefix([]byte("\xEF\xBB\xBF"), p.buf) {
			return nil // maybe a BOM split across calls
		}
		p.started = true
		if bytes.HasPrefix(p.buf, []byte("\xEF\xBB\xBF")) {
			p.raw = append(p.raw, p.buf[:3]...)
			p.buf = p.buf[3:]
		}
	}
	start := 0
	for {
		rest := p.buf[start:]
		if p.skipLF && len(rest) > 0 {
			p.skipLF = false
			if rest[0] == '\n' {
				p.raw = append(p.raw, '\n')
				start++
				continue
			}
		}
		i := bytes.IndexAny(rest, "\r\n")
		if i < 0 {
			break
		}
		line := rest[:i]
		end := i + 1
		if rest[i] == '\r' {
			if i+1 < len(rest) {
				if rest[i+1] == '\n' {
					end++
				}
			} else {
				p.skipLF = true
			}
		}
		p.raw = append(p.raw, rest[:end]...)
		start += end
		if len(line) == 0 {
			p.dispatch(emit)
			continue
		}
		p.field(line)
		if len(p.raw) > p.max {
			p.broken = true
			return ErrEventTooLarge
		}
	}
	n := copy(p.buf, p.buf[start:])
	p.buf = p.buf[:n]
	if len(p.raw)+len(p.buf) > p.max {
		p.broken = true
		return ErrEventTooLarge
	}
	return nil
}

// Pending returns the bytes of an incomplete event (to pass through at the
// end of a stream). The parser keeps them.
func (p *Parser) Pending() []byte {
	out := make([]byte, 0, len(p.raw)+len(p.buf))
	return append(append(out, p.raw...), p.buf...)
}

func (p *Parser) field(line []byte) {
	if line[0] == ':' {
		return // comment
	}
	name, value, found := bytes.Cut(line, []byte{':'})
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "data":
		if p.hasData {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, value...)
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
	emit(p.raw, Event{Event: p.event, Data: p.data, ID: p.id, HasData: p.hasData})
	p.raw = p.raw[:0]
	p.data = p.data[:0]
	p.event = ""
	p.hasData = false
}
