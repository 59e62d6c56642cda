// Package mgmthttp holds the HTTP details shared by the management functions
// (manage-projects, manage-tokens): their routing tables of handlers that
// return errors, served with one JSON error renderer (web.ManagementJSON)
// that also answers the mux's own 404/405; method-not-allowed routes with an
// explicit Allow; mounting a function's path prefixes; list headers
// (X-Total-Count and RFC 8288 Link) and the request actor.
package mgmthttp

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Route is one entry of a management function's routing table: a ServeMux
// pattern and the handler whose error the management JSON renderer answers.
type Route struct {
	Pattern string
	Handle  web.HandlerFunc
}

// Errors is the management API's error surface: {"error","code"} bodies,
// each failure logged once to log.
func Errors(log *slog.Logger) web.Surface {
	return web.Surface{Render: web.ManagementJSON, Log: log}
}

// Serve serves routes on one mux: every error a route returns, and the
// mux's own 404/405, is answered by Errors(log). paths are the prefixes the
// function owns (its Paths()); Serve panics when a route lies outside them
// or a prefix has no route, so that the routing table and what composition
// code mounts cannot drift apart.
func Serve(paths []string, routes []Route, log *slog.Logger) http.Handler {
	errs := Errors(log)
	mux := http.NewServeMux()
	used := make(map[string]bool, len(paths))
	for _, rt := range routes {
		p := rt.Pattern
		if _, path, ok := strings.Cut(p, " "); ok {
			p = path
		}
		prefix, ok := owner(paths, p)
		if !ok {
			panic(fmt.Sprintf("mgmthttp.Serve: route %q lies outside the function's paths %q", rt.Pattern, paths))
		}
		used[prefix] = true
		mux.Handle(rt.Pattern, errs.Handle(rt.Handle))
	}
	for _, p := range paths {
		if !used[p] {
			panic(fmt.Sprintf("mgmthttp.Serve: path %q has no route", p))
		}
	}
	return JSONErrors(mux, log)
}

// Mount registers h on mux for each path prefix, as a Gateway API
// PathPrefix match routes it: the prefix itself and everything under
// prefix+"/". Composition code mounts a function with its package's
// Paths().
func Mount(mux *http.ServeMux, h http.Handler, paths []string) {
	for _, p := range paths {
		mux.Handle(p, h)
		mux.Handle(p+"/", h)
	}
}

// owner is the prefix of paths that path lies under (the prefix itself or
// below prefix+"/"): the match Mount registers.
func owner(paths []string, path string) (string, bool) {
	for _, p := range paths {
		if path == p || strings.HasPrefix(path, p+"/") {
			return p, true
		}
	}
	return "", false
}

// JSONErrors serves mux, but answers requests the mux itself rejects (no
// route: 404; known path, other method: 405 with Allow) with the management
// API's JSON error body instead of the mux's plain text.
func JSONErrors(mux *http.ServeMux, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch probe.status {
		case http.StatusMethodNotAllowed:
			if allow := probe.header.Get("Allow"); allow != "" {
				w.Header().Set("Allow", allow)
			}
			Errors(log).Fail(w, r, errMethodNotAllowed)
		case http.StatusNotFound, 0:
			Errors(log).Fail(w, r, llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "not found"))
		default:
			// Redirects and the like: replay what the mux decided.
			for k, v := range probe.header {
				w.Header()[k] = v
			}
			w.WriteHeader(probe.status)
		}
	})
}

// headerProbe records what a plain-text mux handler would answer.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}

var errMethodNotAllowed = llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed, "method not allowed")

// MethodNotAllowed is a route's catch-all for other methods: 405 with the
// given Allow header.
func MethodNotAllowed(allow string) web.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) error {
		w.Header().Set("Allow", allow)
		return errMethodNotAllowed
	}
}

// NoStore marks every response as not cacheable (they may carry a token once)
// and makes sure a request id exists when no outer middleware set one.
func NoStore(next http.Handler) http.Handler {
	withID := web.WithRequestID(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if web.RequestID(r.Context()) == "" {
			withID.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Actor is the management API caller of r.
func Actor(svc *management.Service, r *http.Request) audit.Actor {
	return svc.Recorder().ActorFrom(r, audit.ActorManagementAPI)
}

// SetListHeaders sets X-Total-Count and an RFC 8288 Link header with first,
// prev, next and last pages of the list at r's URL.
func SetListHeaders(w http.ResponseWriter, r *http.Request, p mgmtapi.Pagination) {
	w.Header().Set("X-Total-Count", strconv.Itoa(p.TotalCount))
	if l := LinkHeader(r.URL, p); l != "" {
		w.Header().Set("Link", l)
	}
}

// LinkHeader renders the Link header value for pagination p at u.
func LinkHeader(u *url.URL, p mgmtapi.Pagination) string {
	last := max(p.TotalPages, 1)
	link := func(page int, rel string) string {
		q := u.Query()
		q.Set("page", strconv.Itoa(page))
		q.Set("page_size", strconv.Itoa(p.PageSize))
		return fmt.Sprintf(`<%s?%s>; rel="%s"`, u.EscapedPath(), q.Encode(), rel)
	}
	parts := []string{link(1, "first")}
	if p.HasPrev {
		parts = append(parts, link(min(p.Page-1, last), "prev"))
	}
	if p.HasNext {
		parts = append(parts, link(p.Page+1, "next"))
	}
	parts = append(parts, link(last, "last"))
	return strings.Join(parts, ", ")
}
