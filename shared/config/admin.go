package config

// Admin configures the admin part. Fields are added by the issue that builds it.
type Admin struct{}

func (x Admin) validate() error { return nil }
