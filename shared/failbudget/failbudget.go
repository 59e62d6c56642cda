// Package failbudget budgets failed authentications, per client IP and
// globally, in fixed windows: Guard is what the management API
// (shared/mgmtauth) and the admin UI's sign-in use. A Guard counts only
// failures (a wrong credential): callers never consult it for a request that
// presents the right one, so a spent budget refuses guesses, never the
// operator. Counts live in Redis when it is configured (Redis: shared by every
// instance, keys under REDIS_KEY_PREFIX) and in memory otherwise or while Redis
// does not answer (Memory, Budget: bounded memory).
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

// left is how long key's window has to run (0 when it has none).
func (b *Budget) left(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.clients[key]; e != nil {
		return max(e.start.Add(b.window).Sub(now), 0)
	}
	return 0
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
