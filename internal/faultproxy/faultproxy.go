// Package faultproxy is a TCP proxy for fault-injection tests: a test puts
// it between a process and PostgreSQL or Redis and decides, at the moment it
// chooses, that the dependency stalls (Pause), goes away (Cut) or hangs
// (Hang), and when it comes back (Resume, Restore). The shared services are
// never touched: only the test's own connections through the proxy are.
//
// It listens on 127.0.0.1:0 and forwards every accepted connection to one
// target, in both directions, chunk by chunk. While the proxy is not
// forwarding, each direction of a connection holds at most the chunk it has
// read (TCP back-pressure holds the rest), so what a client sent before a
// stall reaches the server after it, as on a real network.
package faultproxy

import (
	"errors"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"
)

// mode is what the proxy does with traffic.
type mode int

const (
	forward mode = iota // pass bytes through
	pause               // hold bytes; Resume forwards them
	hang                // hold bytes, accept without dialling; Restore closes what it held
	cut                 // close every connection and every new one
)

// Proxy forwards connections to a target until told otherwise. Its methods
// are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    mode
	changed chan struct{} // closed and replaced on every mode change
	conns   map[*link]struct{}
	held    int // chunks waiting for the gate
	closed  bool
	wg      sync.WaitGroup
}

// link is one accepted connection and, unless it was accepted hung, its
// connection to the target.
type link struct {
	client, server net.Conn
	hung           bool // accepted while hung: never forwarded
}

func (l *link) close() {
	_ = l.client.Close()
	if l.server != nil {
		_ = l.server.Close()
	}
}

// Start listens on 127.0.0.1:0 and forwards to target (host:port); the
// proxy is closed when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatalf("fault proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// StartURL starts a proxy to the host of a connection URL (e.g. a
// PostgreSQL URL) and returns the proxy and the URL with its host replaced
// by the proxy's address.
func StartURL(t testing.TB, raw string) (*Proxy, string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("fault proxy: parse the target URL: %v", err)
	}
	p := Start(t, u.Host)
	u.Host = p.Addr()
	return p, u.String()
}

// New listens on 127.0.0.1:0 and forwards to target. Close stops it.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Pause holds traffic: bytes sent on open and new connections wait in the
// proxy until Resume (or Restore) forwards them. Nothing is closed.
func (p *Proxy) Pause() { p.set(pause) }

// Resume forwards what Pause held and passes traffic again.
func (p *Proxy) Resume() { p.set(forward) }

// Cut closes every connection and closes each new one at once, until
// Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	for l := range p.conns {
		l.close()
	}
	p.mu.Unlock()
	p.set(cut)
}

// Hang makes the dependency accept connections and never answer: open
// connections stop forwarding and new ones are accepted without reaching
// the target, until Restore, which closes every connection the hang held
// (their bytes are never delivered).
func (p *Proxy) Hang() { p.set(hang) }

// Restore ends any fault: traffic passes again. Connections held by Hang
// are closed; bytes held by Pause are forwarded.
func (p *Proxy) Restore() {
	p.mu.Lock()
	if p.mode == hang {
		for l := range p.conns {
			l.close()
		}
	}
	p.mu.Unlock()
	p.set(forward)
}

// Held is how many chunks of bytes wait in the proxy (Pause, Hang): a test
// waits for it to know that its requests are in flight.
func (p *Proxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// WaitHeld waits until at least n chunks are held, or fails t after
// timeout.
func (p *Proxy) WaitHeld(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for p.Held() < n {
		if time.Now().After(deadline) {
			t.Fatalf("fault proxy: %d chunks held after %v, want %d", p.Held(), timeout, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for l := range p.conns {
		l.close()
	}
	close(p.changed) // wake held chunks: closed connections drop them
	p.changed = make(chan struct{})
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) set(m mode) {
	p.mu.Lock()
	p.mode = m
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		m, closed := p.mode, p.closed
		p.mu.Unlock()
		if closed || m == cut {
			_ = c.Close()
			continue
		}
		l := &link{client: c, hung: m == hang}
		if !l.hung {
			s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				_ = c.Close()
				continue
			}
			l.server = s
		}
		if !p.track(l) {
			l.close()
			continue
		}
		if l.hung {
			p.wg.Add(1)
			go func() { // hold the connection open, read nothing
				defer p.wg.Done()
				p.holdHung(l)
			}()
			continue
		}
		p.wg.Add(2)
		go p.pump(l, l.client, l.server)
		go p.pump(l, l.server, l.client)
	}
}

// track adds l to the open connections unless the proxy closed or was cut
// meanwhile.
func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == cut {
		return false
	}
	p.conns[l] = struct{}{}
	return true
}

func (p *Proxy) untrack(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

// holdHung keeps a connection accepted under Hang until Restore, Cut or
// Close closes it (or the client does).
func (p *Proxy) holdHung(l *link) {
	defer p.untrack(l)
	_, _ = io.Copy(io.Discard, l.client) // returns when either side closes it
	l.close()
}

// pump copies src to dst chunk by chunk, each chunk through the gate.
func (p *Proxy) pump(l *link, src, dst net.Conn) {
	defer p.wg.Done()
	defer p.untrack(l)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(l) {
				l.close()
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			// Pass the end on: the other side still reads what came before
			// it, and the other direction may still answer.
			if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
				_ = tc.CloseWrite()
				return
			}
			l.close()
			return
		}
	}
}

// gate waits until the proxy forwards; false: the chunk is dropped and
// the connection closed (Hang ended by Restore, Cut, Close).
func (p *Proxy) gate(l *link) bool {
	p.mu.Lock()
	counted := false
	defer func() {
		if counted {
			p.held--
		}
		p.mu.Unlock()
	}()
	for {
		if p.closed {
			return false
		}
		switch p.mode {
		case forward:
			return true
		case cut:
			return false
		case pause, hang:
			if !counted {
				counted = true
				p.held++
			}
		}
		wasHang := p.mode == hang
		ch := p.changed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
		if wasHang && p.mode != hang && p.mode != cut {
			return false // Restore after Hang: what the hang held is never delivered
		}
	}
}
