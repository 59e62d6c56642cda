// Package tokens is the withering token: its format, generation, and the
// proxy's validation of it, with a bounded in-process cache that management
// actions invalidate (in-process or across instances through Redis pub/sub).
//
// A token looks like
//
//	llmp_<22 base62 characters: 130 random bits><6 base62 characters: CRC32>
//
// The distinctive prefix lets secret scanners recognise leaked tokens and
// keeps them apart from OpenAI keys; the checksum lets the proxy reject a
// mistyped or made-up token without any database or Redis call. Only the
// token's HMAC (shared/secrets) is stored.
package tokens

import (
	"crypto/rand"
	"fmt"
	"hash/crc32"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Format constants.
const (
	// Prefix starts every token.
	Prefix = "llmp_"
	// RandomLen is the number of base62 characters of randomness (≈131 bits).
	RandomLen = 22
	// ChecksumLen is the number of base62 characters of the CRC32 checksum.
	ChecksumLen = 6
	// Length is the total length of a token.
	Length = len(Prefix) + RandomLen + ChecksumLen
)

const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// errInvalidFormat is returned by CheckFormat. It is a shared value so that a
// rejection allocates nothing; callers must not modify it.
var errInvalidFormat = llmproxy.E(llmproxy.ErrUnauthorized, llmproxy.CodeInvalidToken, "invalid token format")

// Generate returns a new random token.
func Generate() (string, error) {
	var buf [Length]byte
	copy(buf[:], Prefix)
	random := buf[len(Prefix) : len(Prefix)+RandomLen]
	// Rejection sampling keeps every character uniform: bytes ≥ 248 (= 4×62)
	// are discarded.
	var src [64]byte
	for n := 0; n < RandomLen; {
		if _, err := rand.Read(src[:]); err != nil {
			return "", fmt.Errorf("generate token: %w", err)
		}
		for _, b := range src {
			if b >= 248 {
				continue
			}
			random[n] = alphabet[b%62]
			if n++; n == RandomLen {
				break
			}
		}
	}
	encodeChecksum(buf[len(Prefix)+RandomLen:], crc32.ChecksumIEEE(random))
	return string(buf[:]), nil
}

// encodeChecksum writes c as ChecksumLen base62 digits, most significant
// first (62^6 > 2^32, so every value fits).
func encodeChecksum(dst []byte, c uint32) {
	v := uint64(c)
	for i := ChecksumLen - 1; i >= 0; i-- {
		dst[i] = alphabet[v%62]
		v /= 62
	}
}

// CheckFormat reports whether s is a well-formed token: prefix, length,
// alphabet and checksum. It does no lookup and allocates nothing. The error is
// an *llmproxy.Error of kind ErrUnauthorized with code invalid_token.
func CheckFormat(s string) error {
	if len(s) != Length || s[:len(Prefix)] != Prefix {
		return errInvalidFormat
	}
	// CRC32 (IEEE) of the random part, computed over the string in place.
	crc := ^uint32(0)
	for i := len(Prefix); i < len(Prefix)+RandomLen; i++ {
		c := s[i]
		if base62Value(c) < 0 {
			return errInvalidFormat
		}
		crc = crc32.IEEETable[byte(crc)^c] ^ (crc >> 8)
	}
	crc = ^crc
	var sum uint64
	for i := len(Prefix) + RandomLen; i < Length; i++ {
		d := base62Value(s[i])
		if d < 0 {
			return errInvalidFormat
		}
		sum = sum*62 + uint64(d)
	}
	if sum != uint64(crc) {
		return errInvalidFormat
	}
	return nil
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

// Hint renders a token for display: the prefix, the first 4 and the last 4
// characters after it ("llmp_AbCd…wXyZ"). It reveals about 24 of the 130
// random bits and is safe to show and store. Anything that is not a
// well-formed token is rendered as "llmp_…" so that no secret leaks through a
// hint.
func Hint(s string) string {
	if CheckFormat(s) != nil {
		return Prefix + "…"
	}
	body := s[len(Prefix):]
	return Prefix + body[:4] + "…" + body[len(body)-4:]
}
