package audit

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Open returns the recorder AUDIT_* configure, writing to st, whose chain it
// keys with the audit key derived from kr (KeysFrom). trusted are the proxies
// whose X-Forwarded-For is believed (TRUSTED_PROXIES). Close it after the
// server drained.
func Open(cfg config.Audit, st store.Store, kr *secrets.Keyring, trusted []netip.Prefix, log *slog.Logger) (*Recorder, error) {
	keys, err := KeysFrom(kr)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	rec, err := NewRecorder(Options{
		Store: st, Disabled: !cfg.Enabled, StoreInDB: cfg.StoreInDB, File: cfg.LogFile, CreateDir: cfg.CreateDir,
		Keys: keys, TrustedProxies: trusted, Log: log,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return rec, nil
}
