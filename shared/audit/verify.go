package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Reasons a link of the chain is broken.
const (
	ReasonHashMismatch     = "hash mismatch"
	ReasonPrevHashMismatch = "prev-hash mismatch"
	ReasonSeqGap           = "seq gap"
)

// Break is the first broken link of the chain.
type Break struct {
	Seq    int64
	ID     string
	Reason string
}

// Result of Verify. Broken is nil when the chain is intact.
type Result struct {
	Count  int // records checked
	Broken *Break
}

// OK reports whether the chain is intact.
func (r Result) OK() bool { return r.Broken == nil }

var errStop = errors.New("stop")

// Verify walks the audit chain in order and checks every link: sequence
// numbers follow each other, each record names its predecessor's hash, and
// each record's hash matches its content. It stops at the first broken link.
// A record changed, inserted or removed in the middle breaks the chain;
// removing records from the end cannot be detected from the chain alone.
func Verify(ctx context.Context, s store.Store) (Result, error) {
	var res Result
	var prevHash string
	var prevSeq int64
	err := s.AuditChain(ctx, func(e llmproxy.AuditEvent) error {
		switch {
		case res.Count == 0 && e.Seq != 1, res.Count > 0 && e.Seq != prevSeq+1:
			res.Broken = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonSeqGap}
		case e.PrevHash != prevHash:
			res.Broken = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonPrevHashMismatch}
		case e.ComputeHash(e.PrevHash) != e.Hash:
			res.Broken = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonHashMismatch}
		}
		if res.Broken != nil {
			return errStop
		}
		res.Count++
		prevHash, prevSeq = e.Hash, e.Seq
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return res, fmt.Errorf("verify audit chain: %w", err)
	}
	return res, nil
}
