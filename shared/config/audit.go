package config

// Audit configures the audit part. Fields are added by the issue that builds it.
type Audit struct{}

func (x Audit) validate() error { return nil }
