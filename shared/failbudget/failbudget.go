// Package failbudget counts failed attempts per client (e.g. per IP) in a
// fixed window, with bounded memory: after Limit failures within Window a
// client is blocked until its window ends. The management API and the admin
// UI's sign-in use it to slow down token guessing.
package failbudget

import (
	"sync"
	"time"
)

// Budget is safe for concurrent use.
type Budget struct {
	limit      int
	window     time.Duration
	maxClients int

	mu      sync.Mutex
	clients map[string]*entry
}

type entry struct {
	failures int
	start    time.Time
	reported bool // the block has been reported once
}

// New returns a budget of limit failures per window for each client,
// remembering at most maxClients clients.
func New(limit int, window time.Duration, maxClients int) *Budget {
	return &Budget{limit: limit, window: window, maxClients: maxClients, clients: map[string]*entry{}}
}

// Blocked returns how long client must wait (0: not blocked) and whether
// this is the first refusal of the block, so that callers can audit a block
// once instead of every attempt an attacker makes.
func (b *Budget) Blocked(client string, now time.Time) (wait time.Duration, first bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.clients[client]
	if e == nil {
		return 0, false
	}
	end := e.start.Add(b.window)
	if !now.Before(end) {
		delete(b.clients, client)
		return 0, false
	}
	if e.failures < b.limit {
		return 0, false
	}
	first = !e.reported
	e.reported = true
	return end.Sub(now), first
}

// Failed records a failure and returns the client's failures in its window.
func (b *Budget) Failed(client string, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.clients[client]
	if e == nil || !now.Before(e.start.Add(b.window)) {
		if len(b.clients) >= b.maxClients {
			b.evict(now)
		}
		e = &entry{start: now}
		b.clients[client] = e
	}
	e.failures++
	return e.failures
}

// Succeeded forgets the client's failures.
func (b *Budget) Succeeded(client string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.clients, client)
}

// Len is the number of clients remembered.
func (b *Budget) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// evict drops expired entries; when none expired it drops arbitrary ones
// until there is room (the memory bound wins over an attacker with many IPs).
func (b *Budget) evict(now time.Time) {
	for c, e := range b.clients {
		if !now.Before(e.start.Add(b.window)) {
			delete(b.clients, c)
		}
	}
	for c := range b.clients {
		if len(b.clients) < b.maxClients {
			return
		}
		delete(b.clients, c)
	}
}
