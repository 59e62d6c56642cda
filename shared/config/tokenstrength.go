package config

import (
	"strings"
	"unicode"
)

// MinManagementTokenLength is the shortest MANAGEMENT_TOKEN accepted: with
// this much entropy the token cannot be guessed, which is what lets the
// failure budgets never refuse the right token.
const MinManagementTokenLength = 32

// ManagementTokenWeakness says why token is too weak to be a management
// token ("" when it is acceptable): shorter than MinManagementTokenLength,
// or visibly low in entropy (one character repeated, only digits, a short
// pattern repeated, a placeholder).
func ManagementTokenWeakness(token string) string {
	if n := len(token); n < MinManagementTokenLength {
		return "is too short (at least 32 characters)"
	}
	distinct := map[rune]bool{}
	digits := true
	for _, r := range token {
		distinct[r] = true
		digits = digits && unicode.IsDigit(r)
	}
	switch {
	case len(distinct) == 1:
		return "is one character repeated"
	case digits:
		return "is only digits"
	case len(distinct) < 8:
		return "uses fewer than 8 distinct characters"
	}
	for p := 1; p <= len(token)/2; p++ {
		if strings.Repeat(token[:p], len(token)/p+1)[:len(token)] == token {
			return "is a short pattern repeated"
		}
	}
	lower := strings.ToLower(token)
	for _, placeholder := range []string{"replace-me", "replaceme", "changeme", "change-me", "example", "password", "secret-token"} {
		if strings.Contains(lower, placeholder) {
			return "contains the placeholder " + placeholder
		}
	}
	return ""
}

// checkManagementToken refuses a configured MANAGEMENT_TOKEN that is weak
// (unset is allowed here: llm-proxy serve generates a strong one, the
// functions refuse to start without one in RequireManagementToken).
func checkManagementToken(token string) error {
	if token == "" {
		return nil
	}
	if why := ManagementTokenWeakness(token); why != "" {
		return invalid("MANAGEMENT_TOKEN", why+"; generate one with: openssl rand -base64 32", "<redacted>")
	}
	return nil
}
