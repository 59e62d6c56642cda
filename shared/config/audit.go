package config

import "time"

// Audit configures the audit trail of management actions.
type Audit struct {
	Enabled   bool   `env:"AUDIT_ENABLED, default=true" desc:"Record every management action (success, failure, denied) in the audit trail."`
	LogFile   string `env:"AUDIT_LOG_FILE" desc:"Also append audit records as JSON lines to this file (empty: database only)."`
	CreateDir bool   `env:"AUDIT_CREATE_DIR, default=true" desc:"Create the directory of AUDIT_LOG_FILE when it does not exist."`
	StoreInDB bool   `env:"AUDIT_STORE_IN_DB, default=true" desc:"Store audit records in the database (hash-chained, checked by llm-proxy audit verify). When false, only AUDIT_LOG_FILE receives them."`
	// AuthFailureLimit (per client IP) and AuthGlobalFailureLimit (all
	// clients, every instance with Redis) are the budgets of wrong management
	// tokens within AuthFailureWindow before further wrong ones get 429. The
	// right token is never refused; requests without one are not counted.
	AuthFailureLimit       int           `env:"MANAGEMENT_AUTH_FAILURE_LIMIT, default=10" desc:"Wrong management tokens allowed per client IP within MANAGEMENT_AUTH_FAILURE_WINDOW before further wrong ones get 429 (the right token is never refused; requests without a token are not counted)."`
	AuthGlobalFailureLimit int           `env:"MANAGEMENT_AUTH_GLOBAL_FAILURE_LIMIT, default=100" desc:"Wrong management tokens allowed from all clients together (across instances when REDIS_ADDR is set) within MANAGEMENT_AUTH_FAILURE_WINDOW before further wrong ones get 429."`
	AuthFailureWindow      time.Duration `env:"MANAGEMENT_AUTH_FAILURE_WINDOW, default=1m" desc:"Window of the management authentication failure budgets."`
}

func (x Audit) validate() error {
	if x.Enabled && !x.StoreInDB && x.LogFile == "" {
		return invalid("AUDIT_STORE_IN_DB", "false requires AUDIT_LOG_FILE (else audit records go nowhere; set AUDIT_ENABLED=false to disable auditing)", x.StoreInDB)
	}
	if x.AuthFailureLimit < 1 {
		return invalid("MANAGEMENT_AUTH_FAILURE_LIMIT", "must be at least 1", x.AuthFailureLimit)
	}
	if x.AuthGlobalFailureLimit < x.AuthFailureLimit {
		return invalid("MANAGEMENT_AUTH_GLOBAL_FAILURE_LIMIT", "must be at least MANAGEMENT_AUTH_FAILURE_LIMIT", x.AuthGlobalFailureLimit)
	}
	if x.AuthFailureWindow < time.Second {
		return invalid("MANAGEMENT_AUTH_FAILURE_WINDOW", "must be at least 1s", x.AuthFailureWindow)
	}
	return nil
}
