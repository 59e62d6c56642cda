// Package managetokens is the manage-tokens function: the management API
// for withering tokens (/manage/tokens…). Every route requires the
// management token; every error is JSON {"error","code"}.
package managetokens

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

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
	Log     *slog.Logger
}

type handler struct {
	svc *management.Service
}

// Paths are the URL path prefixes the function owns, each with everything
// under it (a Gateway API PathPrefix): composition code mounts exactly these
// (mgmthttp.Mount), and knative/httproute.yaml routes them here
// (TestPathsAreRoutedHere); mgmthttp.Serve refuses a route outside them.
func Paths() []string { return []string{"/manage/tokens"} }

// New returns the function's HTTP handler.
func New(d Deps) http.Handler {
	if d.Service == nil || d.Auth == nil {
		panic("managetokens.New: Service and Auth are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: d.Service}
	return mgmthttp.NoStore(d.Auth.Wrap(mgmthttp.Serve(Paths(), h.routes(), d.Log)))
}

// routes is the function's routing table; every path lies under Paths.
func (h *handler) routes() []mgmthttp.Route {
	return []mgmthttp.Route{
		{Pattern: "GET /manage/tokens", Handle: h.list},
		{Pattern: "POST /manage/tokens", Handle: h.create},
		{Pattern: "/manage/tokens", Handle: mgmthttp.MethodNotAllowed("GET, POST")},
		{Pattern: "GET /manage/tokens/{id}", Handle: h.get},
		{Pattern: "PATCH /manage/tokens/{id}", Handle: h.update},
		{Pattern: "DELETE /manage/tokens/{id}", Handle: h.revoke},
		{Pattern: "/manage/tokens/{id}", Handle: mgmthttp.MethodNotAllowed("GET, PATCH, DELETE")},
	}
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	q, err := management.ParseTokenQuery(r.URL.Query())
	if err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionTokenList, err)
	}
	res, err := h.svc.ListTokens(r.Context(), a, q)
	if err != nil {
		return err
	}
	mgmthttp.SetListHeaders(w, r, res.Pagination)
	web.WriteJSON(w, http.StatusOK, res.Tokens)
	return nil
}

type createRequest struct {
	ProjectID       string           `json:"project_id"`
	ProjectIDLegacy string           `json:"projectId"`
	DurationMinutes *int64           `json:"duration_minutes"`
	Duration        string           `json:"duration"`
	ExpiresAt       *time.Time       `json:"expires_at"`
	MaxRequests     *int64           `json:"max_requests"`
	Limits          *llmproxy.Limits `json:"limits"`
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	var req createRequest
	if err := web.DecodeJSON(w, r, &req); err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionTokenCreate, err)
	}
	if req.ProjectID == "" {
		req.ProjectID = req.ProjectIDLegacy
	}
	t, err := h.svc.CreateToken(r.Context(), a, management.CreateTokenInput{
		ProjectID: req.ProjectID, DurationMinutes: req.DurationMinutes, Duration: req.Duration,
		ExpiresAt: req.ExpiresAt, MaxRequests: req.MaxRequests, Limits: req.Limits,
	})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusCreated, t)
	return nil
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) error {
	t, err := h.svc.GetToken(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, t)
	return nil
}

// updateRequest: expires_at null means "never expires".
type updateRequest struct {
	IsActive    *bool            `json:"is_active"`
	MaxRequests *int64           `json:"max_requests"`
	ExpiresAt   json.RawMessage  `json:"expires_at"`
	Limits      *llmproxy.Limits `json:"limits"`
}

func (h *handler) update(w http.ResponseWriter, r *http.Request) error {
	a := mgmthttp.Actor(h.svc, r)
	var req updateRequest
	err := web.DecodeJSON(w, r, &req)
	in := management.UpdateTokenInput{IsActive: req.IsActive, MaxRequests: req.MaxRequests, Limits: req.Limits}
	if err == nil && len(req.ExpiresAt) > 0 {
		var t time.Time
		if string(req.ExpiresAt) != "null" {
			if json.Unmarshal(req.ExpiresAt, &t) != nil {
				err = llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "expires_at must be an RFC 3339 time or null")
			}
		}
		in.ExpiresAt = &t
	}
	if err != nil {
		return h.svc.Reject(r.Context(), a, management.ActionTokenUpdate, err)
	}
	t, err := h.svc.UpdateToken(r.Context(), a, r.PathValue("id"), in)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, t)
	return nil
}

func (h *handler) revoke(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.RevokeToken(r.Context(), mgmthttp.Actor(h.svc, r), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
