package tokenizer

import (
	"math"
	"slices"
	"sync"
)

// noRank marks a pair of parts that is not a token (or no pair at all).
const noRank = math.MaxUint32

// smallPiece is the longest piece merged on the stack, by the quadratic
// algorithm (cheap at this size); longer ones use a heap.
const smallPiece = 128

// part is a boundary of a piece being merged: the byte offset where a part
// starts and the rank of that part merged with the next one.
type part struct {
	start uint32
	rank  uint32
}

// countPiece returns the number of tokens of one pre-tokenized piece.
func (e *Encoding) countPiece(p string) int {
	if len(p) == 1 {
		return 1
	}
	if _, ok := e.ranks.get(p); ok {
		return 1
	}
	if len(p) <= smallPiece {
		var buf [smallPiece + 1]part
		return len(e.mergeSmall(p, buf[:len(p)+1])) - 1
	}
	return e.mergeLarge(p, nil)
}

// encodePiece appends the token ids of one piece to ids.
func (e *Encoding) encodePiece(p string, ids []int) []int {
	if r, ok := e.ranks.get(p); ok {
		return append(ids, int(r))
	}
	if len(p) <= smallPiece {
		var buf [smallPiece + 1]part
		parts := e.mergeSmall(p, buf[:len(p)+1])
		for k := 0; k+1 < len(parts); k++ {
			ids = append(ids, int(e.ranks.rank(p[parts[k].start:parts[k+1].start])))
		}
		return ids
	}
	var out []int
	e.mergeLarge(p, &out)
	return append(ids, out...)
}

// pairRank returns the rank of p[from:to], or noRank.
func (e *Encoding) pairRank(p string, from, to uint32) uint32 {
	if r, ok := e.ranks.get(p[from:to]); ok {
		return r
	}
	return noRank
}

// mergeSmall is tiktoken's byte pair merge: repeatedly merge the adjacent
// pair of parts with the lowest rank (the leftmost on a tie) until no pair
// is a token. parts has len(p)+1 entries; it returns the final boundaries.
func (e *Encoding) mergeSmall(p string, parts []part) []part {
	for i := range parts {
		parts[i] = part{uint32(i), noRank}
	}
	for i := 0; i+2 < len(parts); i++ {
		parts[i].rank = e.pairRank(p, parts[i].start, parts[i+2].start)
	}
	for len(parts) > 2 {
		minRank, minAt := uint32(noRank), -1
		for i := 0; i+1 < len(parts); i++ {
			if parts[i].rank < minRank {
				minRank, minAt = parts[i].rank, i
			}
		}
		if minAt < 0 {
			break
		}
		i := minAt
		if i+3 < len(parts) {
			parts[i].rank = e.pairRank(p, parts[i].start, parts[i+3].start)
		} else {
			parts[i].rank = noRank
		}
		if i > 0 {
			parts[i-1].rank = e.pairRank(p, parts[i-1].start, parts[i+2].start)
		}
		parts = append(parts[:i+1], parts[i+2:]...)
	}
	return parts
}

// largeMerge is the scratch space of mergeLarge, pooled.
type largeMerge struct {
	next, prev []int32  // linked list of live boundaries; next[k] < 0: gone
	rank       []uint32 // rank of the part at k merged with the next
	heap       []uint64 // rank<<32 | k, a min-heap: lowest rank, then leftmost
}

var largeMerges = sync.Pool{New: func() any { return new(largeMerge) }}

// mergeLarge merges like mergeSmall, in O(n log n): a heap holds the
// candidate pairs ordered by (rank, offset), which is the order in which
// the quadratic algorithm picks them; entries made stale by a merge are
// skipped when popped. It returns the number of tokens and, if ids is not
// nil, appends their ids to it.
func (e *Encoding) mergeLarge(p string, ids *[]int) int {
	m := largeMerges.Get().(*largeMerge)
	defer largeMerges.Put(m)
	n := len(p)
	m.next = slices.Grow(m.next[:0], n+1)[:n+1]
	m.prev = slices.Grow(m.prev[:0], n+1)[:n+1]
	m.rank = slices.Grow(m.rank[:0], n+1)[:n+1]
	m.heap = m.heap[:0]
	for k := 0; k <= n; k++ {
		m.next[k], m.prev[k], m.rank[k] = int32(k+1), int32(k-1), noRank
	}
	rankAt := func(k int32) uint32 { // k's part merged with the next one
		a := m.next[k]
		if int(a) >= n {
			return noRank
		}
		return e.pairRank(p, uint32(k), uint32(m.next[a]))
	}
	for k := 0; k+1 < n; k++ {
		if r := e.pairRank(p, uint32(k), uint32(k+2)); r != noRank {
			m.rank[k] = r
			m.push(uint64(r)<<32 | uint64(k))
		}
	}
	tokens := n
	for len(m.heap) > 0 {
		top := m.pop()
		r, k := uint32(top>>32), int32(uint32(top))
		if m.next[k] < 0 || m.rank[k] != r {
			continue // stale: k was merged away or its pair changed
		}
		gone := m.next[k]
		after := m.next[gone]
		m.next[k], m.prev[after] = after, k
		m.next[gone] = -1
		tokens--
		if m.rank[k] = rankAt(k); m.rank[k] != noRank {
			m.push(uint64(m.rank[k])<<32 | uint64(k))
		}
		if b := m.prev[k]; b >= 0 {
			if m.rank[b] = rankAt(b); m.rank[b] != noRank {
				m.push(uint64(m.rank[b])<<32 | uint64(b))
			}
		}
	}
	if ids != nil {
		for k := int32(0); int(k) < n; k = m.next[k] {
			*ids = append(*ids, int(e.ranks.rank(p[k:m.next[k]])))
		}
	}
	return tokens
}

func (m *largeMerge) push(v uint64) {
	h := append(m.heap, v)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if h[parent] <= h[i] {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
	m.heap = h
}

func (m *largeMerge) pop() uint64 {
	h := m.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < len(h) && h[l] < h[small] {
			small = l
		}
		if r := l + 1; r < len(h) && h[r] < h[small] {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	m.heap = h
	return top
}
