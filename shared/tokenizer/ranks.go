package tokenizer

import (
	"hash/maphash"
	"math/bits"
)

// rankTable maps token bytes to ranks like a map[string]uint32, but holds no
// pointer the garbage collector must follow: the token bytes live in one
// string and the slots are plain integers. A Go map of o200k_base's 200,000
// string keys would be 200,000 pointers to mark in every GC cycle of the
// proxy; this is one.
type rankTable struct {
	blob  string // every token's bytes, back to back
	slots []rankSlot
	mask  uint64
	seed  maphash.Seed
}

// rankSlot is one entry of the open-addressed table; n == 0 marks an empty
// slot (no token is empty).
type rankSlot struct {
	off  uint32 // the token's bytes: blob[off : off+n]
	rank uint32
	n    uint16
	tag  uint16 // high bits of the hash: most probes fail without comparing bytes
}

// rankEntry is a token during construction.
type rankEntry struct {
	off, end int
	rank     uint32
}

// newRankTable builds the table for tokens in blob (at most 65535 bytes
// each), at a load factor of at most one half.
func newRankTable(blob string, entries []rankEntry) *rankTable {
	size := uint64(1) << bits.Len64(uint64(2*len(entries)))
	t := &rankTable{blob: blob, slots: make([]rankSlot, size), mask: size - 1, seed: maphash.MakeSeed()}
	for _, e := range entries {
		tok := blob[e.off:e.end]
		h := maphash.String(t.seed, tok)
		for i := h & t.mask; ; i = (i + 1) & t.mask {
			s := &t.slots[i]
			if s.n == 0 {
				*s = rankSlot{off: uint32(e.off), rank: e.rank, n: uint16(len(tok)), tag: uint16(h >> 48)}
				break
			}
			if int(s.n) == len(tok) && t.blob[s.off:s.off+uint32(s.n)] == tok {
				s.rank = e.rank // a repeated token: the last line wins, as in a map
				break
			}
		}
	}
	return t
}

// get returns the rank of token, if it is one.
func (t *rankTable) get(token string) (uint32, bool) {
	if len(token) == 0 || len(token) > 0xffff {
		return 0, false
	}
	h := maphash.String(t.seed, token)
	tag := uint16(h >> 48)
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.n == 0 {
			return 0, false
		}
		if s.tag == tag && int(s.n) == len(token) && t.blob[s.off:s.off+uint32(s.n)] == token {
			return s.rank, true
		}
	}
}

// rank returns the rank of a token known to be one (0 otherwise).
func (t *rankTable) rank(token string) uint32 {
	r, _ := t.get(token)
	return r
}

// len returns the number of tokens.
func (t *rankTable) len() int {
	n := 0
	for _, s := range t.slots {
		if s.n != 0 {
			n++
		}
	}
	return n
}
