package web

import (
	"context"
	"net/http"
	"time"
)

// Check is a readiness dependency: it returns an error when the dependency is
// unreachable.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Health serves /health and /live (liveness: the process answers) and /ready
// (every check passes within timeout; 503 otherwise). It returns a handler for
// those three paths; mount it on a mux.
func Health(version string, timeout time.Duration, checks ...Check) http.Handler {
	mux := http.NewServeMux()
	live := func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok", "timestamp": time.Now().UTC().Format(time.RFC3339Nano), "version": version})
	}
	mux.HandleFunc("GET /health", live)
	mux.HandleFunc("GET /live", live)
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		result := map[string]string{}
		status := http.StatusOK
		for _, c := range checks {
			if err := c.Check(ctx); err != nil {
				result[c.Name] = "down"
				status = http.StatusServiceUnavailable
				continue
			}
			result[c.Name] = "ok"
		}
		body := map[string]any{"status": "ready", "checks": result}
		if status != http.StatusOK {
			body["status"] = "not ready"
		}
		WriteJSON(w, status, body)
	})
	return mux
}
