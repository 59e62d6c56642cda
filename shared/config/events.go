package config

// Events configures the events part. Fields are added by the issue that builds it.
type Events struct{}

func (x Events) validate() error { return nil }
