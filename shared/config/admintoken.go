package config

import (
	"crypto/sha256"
	"encoding/hex"
)

// ManagementTokenDigest is the hex SHA-256 of the management token the
// admin UI's sessions belong to ("" when unknown, e.g. llm-proxy serve's
// generated token before WithManagementToken). A session opened with
// another token is refused, so changing MANAGEMENT_TOKEN ends every session.
func (x Admin) ManagementTokenDigest() string { return x.managementTokenDigest }

// WithManagementToken returns x with the management token's digest set
// (Load does it from MANAGEMENT_TOKEN; "" leaves it unknown).
func (x Admin) WithManagementToken(token string) Admin {
	if token == "" {
		return x.WithManagementTokenDigest("")
	}
	sum := sha256.Sum256([]byte(token))
	return x.WithManagementTokenDigest(hex.EncodeToString(sum[:]))
}

// WithManagementTokenDigest is WithManagementToken for a token known only by
// its hex SHA-256 (llm-proxy serve's generated token).
func (x Admin) WithManagementTokenDigest(digest string) Admin {
	x.managementTokenDigest = digest
	return x
}
