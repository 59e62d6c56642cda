package adminui

import (
	"encoding/hex"
	"fmt"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// WithSessionKey returns c with its session key derived by derive (the
// keyring's DeriveKey) when ADMIN_UI_SESSION_KEY is unset: stable across
// restarts and replicas that share ENCRYPTION_KEY.
func WithSessionKey(c config.Admin, derive func(purpose string) ([]byte, error)) (config.Admin, error) {
	if c.SessionKey != "" {
		return c, nil
	}
	k, err := derive("admin-ui-session")
	if err != nil {
		return c, fmt.Errorf("admin ui session key: %w", err)
	}
	c.SessionKey = hex.EncodeToString(k)
	return c, nil
}
