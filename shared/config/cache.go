package config

// Cache configures the cache part. Fields are added by the issue that builds it.
type Cache struct{}

func (x Cache) validate() error { return nil }
