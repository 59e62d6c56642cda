package adminui

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/web"
	"github.com/llm-proxy/llm-proxy/templates"
)

// projectNames returns the names of the given project ids (unaudited
// lookups for display; an unknown id shows as itself).
func (h *handler) projectNames(ctx context.Context, ids ...string) map[string]string {
	out := map[string]string{}
	for _, id := range ids {
		if _, ok := out[id]; ok || id == "" {
			continue
		}
		out[id] = id
		if p, err := h.reader.GetProject(ctx, id); err == nil {
			out[id] = p.Name
		}
	}
	return out
}

// projectChoices lists projects for selects (first store.MaxPageSize by
// name).
func (h *handler) projectChoices(ctx context.Context) ([]mgmtapi.Project, error) {
	ps, _, err := h.reader.ListProjects(ctx, store.ProjectFilter{Page: store.Page{Number: 1, Size: store.MaxPageSize}})
	if err != nil {
		return nil, err
	}
	out := make([]mgmtapi.Project, 0, len(ps))
	for _, p := range ps {
		out = append(out, mgmtapi.Project{ID: p.ID, Name: p.Name, IsActive: p.IsActive, TokenDefaults: p.TokenDefaults})
	}
	return out, nil
}

func (h *handler) tokens(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	page, size := listPage(q)
	projectID := strings.TrimSpace(q.Get("project_id"))
	status := ""
	if q.Get("status") == "active" || q.Get("active_only") == "true" {
		status = "active"
	}
	list, err := h.svc.ListTokens(ctx, h.actor(r), management.TokenQuery{
		ProjectID: projectID, ActiveOnly: status == "active", Page: page, PageSize: size,
	})
	if err != nil {
		return err
	}
	projects, err := h.projectChoices(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(list.Tokens))
	for _, t := range list.Tokens {
		ids = append(ids, t.ProjectID)
	}
	names := h.projectNames(ctx, ids...)
	d := templates.TokensData{Projects: projects, ProjectID: projectID, Status: status, Now: h.clock()}
	for _, t := range list.Tokens {
		d.Tokens = append(d.Tokens, templates.TokenRow{Token: t, ProjectName: names[t.ProjectID]})
	}
	keep := url.Values{}
	if projectID != "" {
		keep.Set("project_id", projectID)
	}
	if status != "" {
		keep.Set("status", status)
	}
	if size != listPageSize {
		keep.Set("size", strconv.Itoa(size))
	}
	d.Pager = templates.Pager{Pagination: list.Pagination, Query: keep, Path: "/tokens"}
	h.render(w, r, http.StatusOK, templates.Tokens(h.page(r, "Tokens", "tokens"), d))
	return nil
}

func (h *handler) tokenNew(w http.ResponseWriter, r *http.Request) error {
	projects, err := h.projectChoices(r.Context())
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.TokenNew(h.page(r, "Generate Token", "tokens"), templates.TokenNewData{
		Projects: projects, ProjectID: r.URL.Query().Get("project_id"), Duration: templates.DefaultDuration,
	}))
	return nil
}

func invalid(msg string) error {
	return llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, msg)
}

// parseMaxRequests reads an optional max_requests field: blank means
// unlimited (0).
func parseMaxRequests(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, invalid("Maximum requests must be a whole number of at least 1, or blank for unlimited.")
	}
	return n, nil
}

func (h *handler) tokenCreate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	f := r.PostForm
	d := templates.TokenNewData{ProjectID: f.Get("project_id"), Duration: f.Get("duration_minutes"), MaxRequests: f.Get("max_requests")}
	in := management.CreateTokenInput{ProjectID: strings.TrimSpace(d.ProjectID)}
	minutes, err := strconv.ParseInt(strings.TrimSpace(d.Duration), 10, 64)
	if err != nil {
		err = invalid("Choose a lifetime.")
	} else {
		in.DurationMinutes = &minutes
		var mr int64
		if mr, err = parseMaxRequests(d.MaxRequests); err == nil && mr > 0 {
			in.MaxRequests = &mr
		}
	}
	if err == nil {
		err = h.newTokenLimits(r, &in, &d)
	} else {
		_, d.Limits, _, _, _ = readLimits(f, newTokenLimits, llmproxy.Limits{})
	}
	var created mgmtapi.CreatedToken
	if err == nil {
		created, err = h.svc.CreateToken(ctx, h.actor(r), in)
	}
	if err != nil {
		if !formError(err) && !isNotFound(err) {
			return err
		}
		projects, perr := h.projectChoices(ctx)
		if perr != nil {
			return perr
		}
		d.Projects = projects
		pg := h.page(r, "Generate Token", "tokens")
		pg.Error = llmproxy.ErrorMessage(err)
		h.render(w, r, web.StatusOf(err), templates.TokenNew(pg, d))
		return nil
	}
	proxyURL := h.proxyURL
	if proxyURL == "" {
		scheme := "http"
		if isHTTPS(r, h.trusted) {
			scheme = "https"
		}
		proxyURL = scheme + "://" + r.Host + "/v1"
	}
	pg := h.page(r, "Token Generated", "tokens")
	names := h.projectNames(ctx, created.ProjectID)
	// The plaintext token is in this response only: not in a URL, a
	// redirect, a cookie or a log. Cache-Control: no-store is set by render.
	h.render(w, r, http.StatusCreated, templates.TokenCreated(pg, templates.TokenCreatedData{
		Token: created, ProjectName: names[created.ProjectID], ProxyURL: proxyURL,
	}))
	return nil
}

// newTokenLimits reads the generate form's limits into in and d. All fields
// blank leaves in.Limits nil: the service gives the token the project's
// defaults for new tokens. Otherwise a blank field takes the project's
// default for that field (read just before the token is created; a change
// of the defaults in between is not seen) and 0 is unlimited.
func (h *handler) newTokenLimits(r *http.Request, in *management.CreateTokenInput, d *templates.TokenNewData) error {
	f := r.PostForm
	_, vals, _, blank, err := readLimits(f, newTokenLimits, llmproxy.Limits{})
	d.Limits = vals
	if err != nil || blank {
		return err
	}
	var def llmproxy.Limits
	p, err := h.reader.GetProject(r.Context(), in.ProjectID)
	switch {
	case err == nil:
		def = p.TokenDefaults
	case !isNotFound(err):
		return fmt.Errorf("read project defaults: %w", err)
	} // an unknown project is reported by the service
	l, _, _, _, err := readLimits(f, newTokenLimits, def)
	if err != nil {
		return err
	}
	in.Limits = &l
	return nil
}

func (h *handler) tokenData(r *http.Request) (templates.TokenData, error) {
	t, err := h.svc.GetToken(r.Context(), h.actor(r), r.PathValue("id"))
	if err != nil {
		return templates.TokenData{}, err
	}
	return templates.TokenData{Token: t, ProjectName: h.projectNames(r.Context(), t.ProjectID)[t.ProjectID], Now: h.clock(),
		Limits: templates.LimitValuesOf(t.Limits)}, nil
}

func (h *handler) tokenShow(w http.ResponseWriter, r *http.Request) error {
	d, err := h.tokenData(r)
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.TokenShow(h.page(r, "Token Details", "tokens"), d))
	return nil
}

func (h *handler) tokenEdit(w http.ResponseWriter, r *http.Request) error {
	d, err := h.tokenData(r)
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.TokenEdit(h.page(r, "Edit Token", "tokens"), d))
	return nil
}

func (h *handler) tokenPost(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	switch method(r, http.MethodPut) {
	case http.MethodDelete:
		return h.tokenRevoke(w, r, id)
	case http.MethodPut, http.MethodPatch:
	default:
		return llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed, "method not allowed")
	}
	in, err := tokenUpdate(r.PostForm)
	if err == nil {
		_, err = h.svc.UpdateToken(r.Context(), h.actor(r), id, in)
	}
	if err != nil {
		if !formError(err) {
			return err
		}
		d, derr := h.tokenData(r)
		if derr != nil {
			return err
		}
		if _, vals, sent, _, _ := readLimits(r.PostForm, tokenLimits, llmproxy.Limits{}); sent {
			d.Limits = vals // as typed
		}
		pg := h.page(r, "Edit Token", "tokens")
		pg.Error = llmproxy.ErrorMessage(err)
		h.render(w, r, web.StatusOf(err), templates.TokenEdit(pg, d))
		return nil
	}
	h.redirect(w, r, "/tokens/"+id, "done", "token_updated")
	return nil
}

// tokenUpdate reads the edit form: only fields that were sent change, so the
// list's "Reactivate" button (is_active only) keeps max_requests.
func tokenUpdate(f url.Values) (management.UpdateTokenInput, error) {
	var in management.UpdateTokenInput
	if v, ok := lastValue(f, "is_active"); ok {
		b := v == "true" || v == "on" || v == "1"
		in.IsActive = &b
	}
	if _, ok := f["max_requests"]; ok {
		n, err := parseMaxRequests(f.Get("max_requests"))
		if err != nil {
			return in, err
		}
		in.MaxRequests = &n
	}
	if v, _ := lastValue(f, "never_expires"); v == "true" || v == "on" {
		zero := time.Time{}
		in.ExpiresAt = &zero
	} else if v := strings.TrimSpace(f.Get("new_expires_at")); v != "" {
		t, err := parseUTC(v)
		if err != nil {
			return in, invalid("New expiry must be a date and time (UTC), e.g. 2026-01-02T15:04.")
		}
		in.ExpiresAt = &t
	}
	// Limit fields that were sent replace the token's limits; a blank field
	// is unlimited (0).
	l, _, sent, _, err := readLimits(f, tokenLimits, llmproxy.Limits{})
	if err != nil {
		return in, err
	}
	if sent {
		in.Limits = &l
	}
	if in.IsActive == nil && in.MaxRequests == nil && in.ExpiresAt == nil && in.Limits == nil {
		return in, invalid("Nothing to update.")
	}
	return in, nil
}

// parseUTC reads a datetime-local value (interpreted as UTC) or RFC 3339.
func parseUTC(v string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339Nano} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, invalid("invalid time")
}

func (h *handler) tokenRevoke(w http.ResponseWriter, r *http.Request, id string) error {
	if r.PostForm.Get("confirm") != "yes" {
		t, err := h.svc.GetToken(r.Context(), h.actor(r), id)
		if err != nil {
			return err
		}
		h.render(w, r, http.StatusOK, templates.Confirm(h.page(r, "Revoke Token", "tokens"), templates.ConfirmData{
			Heading: "Revoke Token", Message: templates.RevokeTokenMessage(t.Token),
			Action: "/tokens/" + t.ID, Method: http.MethodDelete, Button: "Revoke Token", CancelPath: "/tokens/" + t.ID,
		}))
		return nil
	}
	if err := h.svc.RevokeToken(r.Context(), h.actor(r), id); err != nil {
		return err
	}
	h.redirect(w, r, "/tokens/"+id, "done", "token_revoked")
	return nil
}
