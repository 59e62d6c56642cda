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
	log   *slog.Logger
}

// New returns the function's HTTP handler.
func New(d Deps) http.Handler {
	if d.Service == nil || d.Auth == nil {
		panic("manageprojects.New: Service and Auth are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: d.Service, cache: d.Cache, log: d.Log}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /manage/projects", h.list)
	mux.HandleFunc("POST /manage/projects", h.create)
	mux.HandleFunc("/manage/projects", mgmthttp.MethodNotAllowed("GET, POST", d.Log))
	mux.HandleFunc("GET /manage/projects/{id}", h.get)
	mux.HandleFunc("PATCH /manage/projects/{id}", h.update)
	mux.HandleFunc("DELETE /manage/projects/{id}", h.delete)
	mux.HandleFunc("/manage/projects/{id}", mgmthttp.MethodNotAllowed("GET, PATCH", d.Log))
	mux.HandleFunc("POST /manage/projects/{id}/tokens/revoke", h.revokeTokens)
	mux.HandleFunc("/manage/projects/{id}/tokens/revoke", mgmthttp.MethodNotAllowed("POST", d.Log))
	mux.HandleFunc("GET /manage/audit", h.listAudit)
	mux.HandleFunc("/manage/audit", mgmthttp.MethodNotAllowed("GET", d.Log))
	mux.HandleFunc("GET /manage/audit/{id}", h.getAudit)
	mux.HandleFunc("/manage/audit/{id}", mgmthttp.MethodNotAllowed("GET", d.Log))
	mux.HandleFunc("GET /manage/usage", h.usage)
	mux.HandleFunc("/manage/usage", mgmthttp.MethodNotAllowed("GET", d.Log))
	mux.HandleFunc("POST /manage/cache/purge", h.purge)
	mux.HandleFunc("/manage/cache/purge", mgmthttp.MethodNotAllowed("POST", d.Log))
	return mgmthttp.NoStore(d.Auth.Wrap(mgmthttp.JSONErrors(mux, d.Log)))
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	web.WriteError(w, r, h.log, err)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseProjectQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionProjectList, err))
		return
	}
	res, err := h.svc.ListProjects(r.Context(), a, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	mgmthttp.SetListHeaders(w, r, res.Pagination)
	web.WriteJSON(w, http.StatusOK, res.Projects)
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

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	var req createRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionProjectCreate, err))
		return
	}
	key := req.APIKey
	if key == "" {
		key = req.OpenAIAPIKey
	}
	p, err := h.svc.CreateProject(r.Context(), a, management.CreateProjectInput{
		Name: req.Name, APIKey: key, Limits: req.Limits, TokenDefaults: req.TokenDefaults,
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusCreated, p)
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	p, err := h.svc.GetProject(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, p)
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

func (h *handler) update(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	var req updateRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionProjectUpdate, err))
		return
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
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, p)
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, PATCH")
	h.fail(w, r, h.svc.DenyProjectDelete(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id")))
}

func (h *handler) revokeTokens(w http.ResponseWriter, r *http.Request) {
	res, err := h.svc.RevokeProjectTokens(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, res)
}

func (h *handler) listAudit(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseAuditQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionAuditList, err))
		return
	}
	res, err := h.svc.ListAudit(r.Context(), a, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	mgmthttp.SetListHeaders(w, r, res.Pagination)
	web.WriteJSON(w, http.StatusOK, res)
}

// usage serves per-project usage over a window (default the last 24 hours).
func (h *handler) usage(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseUsageQuery(r.URL.Query())
	if err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionUsageList, err))
		return
	}
	res, err := h.svc.ProjectUsage(r.Context(), a, q)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, res)
}

func (h *handler) getAudit(w http.ResponseWriter, r *http.Request) {
	e, err := h.svc.GetAudit(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, e)
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

func (h *handler) purge(w http.ResponseWriter, r *http.Request) {
	a := mgmthttp.Actor(h.svc, r)
	var req purgeRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		h.fail(w, r, h.svc.Reject(r.Context(), a, management.ActionCachePurge, err))
		return
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
		h.fail(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, res)
}
