package httpcache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"io"
	"math/big"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Key layout (before the Redis backend's REDIS_CACHE_KEY_PREFIX):
//
//	<project>:<request>:<s|n>             vary record: the header names the entries vary on
//	<project>:<request>:<s|n>:<variant>   entry: one response
//
// <project> is a hash of the project id (so ids never need escaping in
// patterns), <request> a hash of method, path, sorted query and the canonical
// body, s/n the stream flag, <variant> a hash of the values of the varying
// request headers. Purging a project deletes "<project>:", an exact request
// "<project>:<request>:" (both stream flags, every variant).

// projectScope is the key prefix of every entry of a project.
func projectScope(projectID string) string {
	sum := sha256.Sum256([]byte("project\x00" + projectID))
	return hex.EncodeToString(sum[:12]) + ":"
}

// requestScope is the key prefix of every entry of one request of a project.
func requestScope(projectID, method, path, rawQuery string, body []byte) string {
	if method == http.MethodHead {
		method = http.MethodGet // HEAD is answered from GET entries
	}
	h := sha256.New()
	writeField(h, "m", method)
	writeField(h, "p", path)
	writeQuery(h, rawQuery)
	var bh [sha256.Size]byte
	writeField(h, "b", string(bodyDigest(body, bh[:0])))
	return projectScope(projectID) + hex.EncodeToString(h.Sum(nil)[:16]) + ":"
}

// baseKey is the vary record's key; entries live under baseKey + ":" + variant.
func baseKey(reqScope string, stream bool) string {
	if stream {
		return reqScope + "s"
	}
	return reqScope + "n"
}

// variantKey is the entry key for the values of names in r.
func variantKey(base string, names []string, r *http.Request) string {
	h := sha256.New()
	for _, n := range names {
		writeField(h, n, normalizeHeaderValue(r.Header.Values(n)))
	}
	return base + ":" + hex.EncodeToString(h.Sum(nil)[:12])
}

// isEntryKey reports whether key (without a backend prefix) names an entry
// rather than a vary record.
func isEntryKey(key string) bool { return strings.Count(key, ":") == 3 }

func normalizeHeaderValue(vs []string) string {
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return strings.Join(strings.Fields(vs[0]), " ")
	}
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(parts, ",")
}

// canonicalNames canonicalises, deduplicates and sorts header names.
func canonicalNames(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, textproto.CanonicalMIMEHeaderKey(n))
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func writeField(h hash.Hash, name, value string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(name)))])
	io.WriteString(h, name)
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(value)))])
	io.WriteString(h, value)
}

// writeQuery hashes the query with keys and values sorted. An unparsable
// query is hashed raw.
func writeQuery(h hash.Hash, raw string) {
	if raw == "" {
		writeField(h, "q", "")
		return
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		writeField(h, "qraw", raw)
		return
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	writeField(h, "q", "")
	for _, k := range keys {
		vs := slices.Clone(q[k])
		sort.Strings(vs)
		for _, v := range vs {
			writeField(h, k, v)
		}
	}
}

// bodyDigest appends to dst a digest of body that ignores JSON key order and
// whitespace: a body that is one JSON object or array is decoded (numbers
// kept exact) and hashed in a canonical form; anything else is hashed raw.
func bodyDigest(body []byte, dst []byte) []byte {
	h := sha256.New()
	if len(body) == 0 {
		h.Write([]byte("empty"))
		return h.Sum(dst)
	}
	if c, ok := canonicalJSON(body); ok {
		h.Write([]byte("json\x00"))
		h.Write(c)
		return h.Sum(dst)
	}
	h.Write([]byte("raw\x00"))
	h.Write(body)
	return h.Sum(dst)
}

// canonicalNumber returns an exact canonical spelling of a JSON number.
// Integers are already canonical; others are normalised as rationals.
func canonicalNumber(s string) string {
	if !strings.ContainsAny(s, ".eE") {
		if s == "-0" {
			return "0"
		}
		return s
	}
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		// Bound the exponent: big.Rat would expand 1e999999999 in memory.
		exp, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || exp > 400 || exp < -400 {
			return s
		}
	}
	var r big.Rat
	if _, ok := r.SetString(s); !ok {
		return s
	}
	return r.RatString()
}
