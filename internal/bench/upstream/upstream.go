// Package upstream is the benchmark's mock OpenAI upstream: the repository's
// mockopenai server (JSON and SSE, usage, key check, request counter) plus
// what the benchmark needs to attribute costs — a count of accepted
// connections (so the report can show new upstream connections per 1,000
// requests) and a control endpoint to change the pacing of streams between
// scenarios.
//
// Control endpoints (no authentication; the server listens on loopback):
//
//	GET  /_bench/stats              {"requests":n,"connections":n,"open_connections":n}
//	POST /_bench/delay?d=100ms      pause before every streamed chunk
package upstream

import (
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

// Stats are the server's counters since start.
type Stats struct {
	Requests        int64 `json:"requests"`         // authenticated API requests
	Connections     int64 `json:"connections"`      // connections accepted
	OpenConnections int64 `json:"open_connections"` // connections not yet closed
}

// Server is the mock upstream.
type Server struct {
	mock  *mockopenai.Server
	conns atomic.Int64
	open  atomic.Int64
	mux   *http.ServeMux
}

// New returns a Server answering like OpenAI with opts.
func New(opts mockopenai.Options) *Server {
	s := &Server{mock: mockopenai.New(opts), mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /_bench/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.Stats())
	})
	s.mux.HandleFunc("POST /_bench/delay", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "d: want a non-negative Go duration", http.StatusBadRequest)
			return
		}
		s.mock.SetChunkDelay(d)
		w.WriteHeader(http.StatusNoContent)
	})
	s.mux.Handle("/", s.mock)
	return s
}

// ServeHTTP serves the control endpoints and the mock API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// ConnState counts connections; install it as http.Server.ConnState.
func (s *Server) ConnState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.conns.Add(1)
		s.open.Add(1)
	case http.StateClosed, http.StateHijacked:
		s.open.Add(-1)
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Requests: s.mock.Requests(), Connections: s.conns.Load(), OpenConnections: s.open.Load()}
}
