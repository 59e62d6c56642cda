package config

// Proxy configures the proxy part. Fields are added by the issue that builds it.
type Proxy struct{}

func (x Proxy) validate() error { return nil }
