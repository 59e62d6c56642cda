package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Reasons a link of the chain is broken.
const (
	ReasonHashMismatch     = "hash mismatch"
	ReasonPrevHashMismatch = "prev-hash mismatch"
	ReasonSeqGap           = "seq gap"
	// ReasonUnknownKey: the record names an audit key id that is neither
	// ENCRYPTION_KEY's nor one of ENCRYPTION_KEY_PREVIOUS's.
	ReasonUnknownKey = "unknown audit key id (is the key that sealed it in ENCRYPTION_KEY_PREVIOUS?)"
	// ReasonUnkeyed: an unkeyed (legacy) record after the first keyed one;
	// only records written before the chain was keyed may be unkeyed.
	ReasonUnkeyed = "unkeyed record after the chain was keyed"
	// ReasonFileMismatch: the audit file holds another record at this seq.
	ReasonFileMismatch = "differs from the audit file"
	// ReasonTruncated: the audit file holds records past the database's last
	// one, so records were deleted from the end of the database.
	ReasonTruncated = "missing from the database (the audit file has it: records were deleted from the end)"
)

// Break is the first broken link of the chain.
type Break struct {
	Seq    int64
	ID     string
	Reason string
}

// Result of Verify. Broken is nil when the chain is intact.
type Result struct {
	Count int // records checked
	// Legacy is how many of them are unkeyed records from before the chain
	// was keyed (seq 1 to LegacyThrough). They are checked with the unkeyed
	// hash, and the first keyed record's MAC covers the last one's hash, so
	// they cannot be changed once a keyed record follows them.
	Legacy        int
	LegacyThrough int64
	Head          int64       // seq of the last record checked
	File          *FileResult // set when a file was checked
	Broken        *Break
}

// FileResult is what the check against the audit file found.
type FileResult struct {
	Path      string
	Lines     int // lines that carry a seq and a hash
	Unsealed  int // lines without them (written before the chain was keyed, or not stored in the database)
	Matched   int // database records found in the file
	NotInFile int // database records the file does not have (another instance's file, or written before AUDIT_LOG_FILE was set)
}

// OK reports whether the chain is intact.
func (r Result) OK() bool { return r.Broken == nil }

// VerifyOptions tune Verify.
type VerifyOptions struct {
	// File, when set, is an AUDIT_LOG_FILE to check the database against:
	// every line with a seq must be the database's record at that seq (same
	// id and hash), and a line past the database's last record means records
	// were deleted from its end. The file is the anchor outside the table.
	File string
}

var errStop = errors.New("stop")

// fileLine is a line's link: id and hash at a seq.
type fileLine struct{ id, hash string }

// Verify walks the audit chain in order and checks every link: sequence
// numbers follow each other from 1, each record names its predecessor's
// hash, and each record's hash is the MAC of its content under the key its
// key id names (keys: the current and previous keys). Unkeyed records are
// accepted only before the first keyed one (legacy, Result.Legacy). It stops
// at the first broken link. A record changed, inserted, removed or moved in
// the middle breaks the chain, and nobody without the key can re-seal it;
// records removed from the end are found only against the file
// (VerifyOptions.File).
func Verify(ctx context.Context, s store.Store, keys *Keys, o VerifyOptions) (Result, error) {
	var res Result
	var lines map[int64][]fileLine
	if o.File != "" {
		var err error
		lines, res.File, err = readFile(o.File)
		if err != nil {
			return res, err
		}
	}
	var prevHash string
	var prevSeq int64
	keyed := false
	err := s.AuditChain(ctx, func(e llmproxy.AuditEvent) error {
		res.Broken = checkLink(e, res.Count, prevSeq, prevHash, keyed, keys)
		if res.Broken == nil && lines != nil {
			if got, ok := lines[e.Seq]; ok {
				for _, l := range got {
					if l.id != e.ID || l.hash != e.Hash {
						res.Broken = &Break{Seq: e.Seq, ID: e.ID, Reason: ReasonFileMismatch}
						break
					}
				}
				delete(lines, e.Seq)
				res.File.Matched++
			} else {
				res.File.NotInFile++
			}
		}
		if res.Broken != nil {
			return errStop
		}
		if e.KeyID == "" {
			res.Legacy++
			res.LegacyThrough = e.Seq
		} else {
			keyed = true
		}
		res.Count++
		res.Head = e.Seq
		prevHash, prevSeq = e.Hash, e.Seq
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return res, fmt.Errorf("verify audit chain: %w", err)
	}
	if res.Broken == nil && len(lines) > 0 {
		// Lines the database walk did not consume: past its end.
		first := int64(0)
		for seq := range lines {
			if first == 0 || seq < first {
				first = seq
			}
		}
		res.Broken = &Break{Seq: first, ID: lines[first][0].id, Reason: ReasonTruncated}
	}
	return res, nil
}

// checkLink returns the break of record e, checked after n records ending at
// prevSeq with prevHash, or nil.
func checkLink(e llmproxy.AuditEvent, n int, prevSeq int64, prevHash string, keyed bool, keys *Keys) *Break {
	brk := func(reason string) *Break { return &Break{Seq: e.Seq, ID: e.ID, Reason: reason} }
	switch {
	case n == 0 && e.Seq != 1, n > 0 && e.Seq != prevSeq+1:
		return brk(ReasonSeqGap)
	case e.PrevHash != prevHash:
		return brk(ReasonPrevHashMismatch)
	case e.KeyID == "" && keyed:
		return brk(ReasonUnkeyed)
	case e.KeyID == "":
		if e.ComputeHash(e.PrevHash) != e.Hash {
			return brk(ReasonHashMismatch)
		}
		return nil
	}
	secret, ok := keys.secret(e.KeyID)
	if !ok {
		return brk(ReasonUnknownKey)
	}
	if e.ComputeMAC(e.PrevHash, secret) != e.Hash {
		return brk(ReasonHashMismatch)
	}
	return nil
}

// readFile reads the links of an audit file's sealed lines by seq.
func readFile(path string) (map[int64][]fileLine, *FileResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("verify audit chain: open audit file: %w", err)
	}
	defer f.Close()
	res := &FileResult{Path: path}
	lines := map[int64][]fileLine{}
	br := bufio.NewReaderSize(f, 64<<10)
	for n := 1; ; n++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) > 0 {
			var l struct {
				ID   string `json:"id"`
				Seq  int64  `json:"seq"`
				Hash string `json:"hash"`
			}
			if jerr := json.Unmarshal(raw, &l); jerr != nil {
				if err == io.EOF {
					break // a last line cut short (a crash while writing)
				}
				return nil, nil, fmt.Errorf("verify audit chain: %s line %d: %w", path, n, jerr)
			}
			if l.Seq > 0 && l.Hash != "" {
				lines[l.Seq] = append(lines[l.Seq], fileLine{id: l.ID, hash: l.Hash})
				res.Lines++
			} else {
				res.Unsealed++
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("verify audit chain: read %s: %w", path, err)
		}
	}
	return lines, res, nil
}
