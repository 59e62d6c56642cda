package secrets

import "github.com/llm-proxy/llm-proxy/shared/config"

// KeyringFromConfig is the keyring of ENCRYPTION_KEY (key, when not empty,
// overrides it: llm-proxy serve's key file) and ENCRYPTION_KEY_PREVIOUS.
func KeyringFromConfig(cfg config.Secrets, key string) (*Keyring, error) {
	if key == "" {
		key = cfg.EncryptionKey
	}
	return NewKeyring(key, SplitKeys(cfg.EncryptionKeyPrevious))
}
