// Package manageprojects is the manage-projects function: the management
// API for projects (/manage/projects…), the audit trail (/manage/audit…) and
// cache purges (/manage/cache/purge). Every route requires the management
// token; every error is JSON {"error","code"}.
package manageprojects

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/mgmthttp"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Deps are the function's collaborators.
type Deps struct {
	Service *management.Service // required
	Auth    *mgmtauth.Auth      // required
	// Cache purges cached responses; nil means caching is disabled and
	// POST /manage/cache/purge answers 400.
	Cache management.CachePurger
	Log   *slog.Logger
}

type handler struct {
	svc   *management.Service
	cache management.CachePurger
}

// Paths are the URL path prefixes the function owns, each with everything
// under it (a Gateway API PathPrefix): composition code mounts exactly these
// (mgmthttp.Mount), and knative/httproute.yaml routes them here
// (TestPathsAreRoutedHere); mgmthttp.Serve refuses a route outside them.
func Paths() []string {
	return []string{"/manage/projects", "/manage/audit", "/manage/usage", "/manage/cache"}
}

// New returns the function's HTTP handler.
func New(d Deps) http.Handler {
	if d.Service == nil || d.Auth == nil {
		panic("manageprojects.New: Service and Auth are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: d.Service, cache: d.Cache}
	return mgmthttp.NoStore(d.Auth.Wrap(mgmthttp.Serve(Paths(), h.routes(), d.Log)))
}

// routes is the function's routing table; every path lies under Paths.
func (h *handler) routes() []mgmthttp.Route {
	return []mgmthttp.Route{
		{Pattern: "GET /manage/projects", Handle: h.list},
		{Pattern: "POST /manage/projects", Handle: h.create},
		{Pattern: "/manage/projects", Handle: mgmthttp.MethodNotAllowed("GET, POST")},
		{Pattern: "GET /manage/projects/{id}", Handle: h.get},
		{Pattern: "PATCH /manage/projects/{id}", Handle: h.update},
		{Pattern: "DELETE /manage/projects/{id}", Handle: h.delete},
		{Pattern: "/manage/projects/{id}", Handle: mgmthttp.MethodNotAllowed("GET, PATCH")},
		{Pattern: "POST /manage/projects/{id}/tokens/revoke", Handle: h.revokeTokens},
		{Pattern: "/manage/projects/{id}/tokens/revoke", Handle: mgmthttp.MethodNotAllowed("POST")},
		{Pattern: "GET /manage/audit", Handle: h.listAudit},
		{Pattern: "/manage/audit", Handle: mgmthttp.MethodNotAllowed("GET")},
		{Pattern: "GET /manage/audit/{id}", Handle: h.getAudit},
		{Pattern: "/manage/audit/{id}", Handle: mgmthttp.MethodNotAllowed("GET")},
		{Pattern: "GET /manage/usage", Handle: h.usage},
		{Pattern: "/manage/usage", Handle: mgmthttp.MethodNotAllowed("GET")},
		{Pattern: "POST /manage/cache/purge", Handle: h.purge},
		{Pattern: "/manage/cache/purge", Handle: mgmthttp.MethodNotAllowed("POST")},
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseProjectQuery(r.URL.Query())
	if err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionProjectList, err)
	}
	res, err := h.svc.ListProjects(r.Context(), a, q)
	if err != nil {
		return err
	}
	mgmthttp.SetListHeaders(w, r, res.Pagination)
	web.WriteJSON(w, http.StatusOK, res.Projects)
	return nil
}

// createRequest accepts the original's api_key and the legacy
// openai_api_key.
type createRequest struct {
	Name          string           `json:"name"`
	APIKey        string           `json:"api_key"`
	OpenAIAPIKey  string           `json:"openai_api_key"`
	Limits        *llmproxy.Limits `json:"limits"`
	TokenDefaults *llmproxy.Limits `json:"token_defaults"`
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	var req createRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionProjectCreate, err)
	}
	key := req.APIKey
	if key == "" {
		key = req.OpenAIAPIKey
	}
	p, err := h.svc.CreateProject(r.Context(), a, management.CreateProjectInput{
		Name: req.Name, APIKey: key, Limits: req.Limits, TokenDefaults: req.TokenDefaults,
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, p)
	return nil
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) error {
	p, err := h.svc.GetProject(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, p)
	return nil
}

type updateRequest struct {
	Name          *string          `json:"name"`
	APIKey        *string          `json:"api_key"`
	OpenAIAPIKey  *string          `json:"openai_api_key"`
	IsActive      *bool            `json:"is_active"`
	RevokeTokens  *bool            `json:"revoke_tokens"`
	Limits        *llmproxy.Limits `json:"limits"`
	TokenDefaults *llmproxy.Limits `json:"token_defaults"`
}

func (h *handler) update(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	var req updateRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionProjectUpdate, err)
	}
	key := req.APIKey
	if key == nil || *key == "" {
		key = req.OpenAIAPIKey
	}
	p, err := h.svc.UpdateProject(r.Context(), a, r.PathValue("id"), management.UpdateProjectInput{
		Name: req.Name, APIKey: key, IsActive: req.IsActive, RevokeTokens: req.RevokeTokens,
		Limits: req.Limits, TokenDefaults: req.TokenDefaults,
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, p)
	return nil
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Allow", "GET, PATCH")
	return h.svc.DenyProjectDelete(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
}

func (h *handler) revokeTokens(w http.ResponseWriter, r *http.Request) error {
	res, err := h.svc.RevokeProjectTokens(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (h *handler) listAudit(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseAuditQuery(r.URL.Query())
	if err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionAuditList, err)
	}
	res, err := h.svc.ListAudit(r.Context(), a, q)
	if err != nil {
		return err
	}
	mgmthttp.SetListHeaders(w, r, res.Pagination)
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// usage serves per-project usage over a window (default the last 24 hours).
func (h *handler) usage(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseUsageQuery(r.URL.Query())
	if err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionUsageList, err)
	}
	res, err := h.svc.ProjectUsage(r.Context(), a, q)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (h *handler) getAudit(w http.ResponseWriter, r *http.Request) error {
	e, err := h.svc.GetAudit(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, e)
	return nil
}

// purgeRequest: {"project_id"} | {"project_id","method","path","body"} |
// {"all":true}. body may be a JSON string or any JSON value (its compact
// encoding is used).
type purgeRequest struct {
	All       bool            `json:"all"`
	ProjectID string          `json:"project_id"`
	Method    string          `json:"method"`
	Path      string          `json:"path"`
	Query     string          `json:"query"`
	Body      json.RawMessage `json:"body"`
}

func (h *handler) purge(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	var req purgeRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionCachePurge, err)
	}
	body := ""
	if len(req.Body) > 0 && string(req.Body) != "null" {
		var s string
		if json.Unmarshal(req.Body, &s) == nil {
			body = s
		} else {
			body = string(req.Body)
		}
	}
	res, err := h.svc.PurgeCache(r.Context(), a, h.cache, management.PurgeCacheInput{
		All: req.All, ProjectID: req.ProjectID, Method: req.Method, Path: req.Path, Query: req.Query, Body: body,
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}
