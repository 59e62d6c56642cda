package config

// Limits configures the limits part. Fields are added by the issue that builds it.
type Limits struct{}

func (x Limits) validate() error { return nil }
