package config

import (
	"context"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

func TestWeakManagementTokenIsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, token, why string
	}{
		{"unset (serve generates one)", "", ""},
		{"openssl rand -base64 32", "q3Lx0b8m1VHrjP0N4e2Zk7s5WcYtA9uFgQdRiEoBnJw=", ""},
		{"short", "s3cret-management-token", "too short"},
		{"31 characters", strings.Repeat("aB3$", 8)[:31], "too short"},
		{"repeated character", strings.Repeat("x", 40), "one character repeated"},
		{"digits", "1234567890123456789012345678901234", "only digits"},
		{"few characters", strings.Repeat("abcab", 8), "fewer than 8 distinct"},
		{"short pattern repeated", strings.Repeat("abcdefgh", 5), "pattern repeated"},
		{"placeholder", "replace-me-with-a-real-token-please-0", "placeholder"},
	} {
		_, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"MANAGEMENT_TOKEN": tc.token}))
		switch {
		case tc.why == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.why != "" && (err == nil || !strings.Contains(err.Error(), "MANAGEMENT_TOKEN") || !strings.Contains(err.Error(), tc.why)):
			t.Errorf("%s: %v, want a refusal naming MANAGEMENT_TOKEN: %s", tc.name, err, tc.why)
		case err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token):
			t.Errorf("%s: the error shows the token: %v", tc.name, err)
		}
	}
}
