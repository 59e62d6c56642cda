package adminui

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/web"
	"github.com/llm-proxy/llm-proxy/templates"
)

// listPageSize is the page size of the UI's lists (the `size` query
// parameter may ask for up to store.MaxPageSize).
const listPageSize = 20

// listPage reads page and size from a list's query; bad values fall back to
// the defaults rather than failing the page.
func listPage(q url.Values) (page, size int) {
	page, size = 1, listPageSize
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n >= 1 && n <= 1_000_000 {
		page = n
	}
	for _, k := range []string{"size", "page_size"} {
		if n, err := strconv.Atoi(q.Get(k)); err == nil && n >= 1 {
			size = min(n, store.MaxPageSize)
		}
	}
	return page, size
}

func (h *handler) projects(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	page, size := listPage(q)
	search := strings.TrimSpace(q.Get("search"))
	if len(search) > 200 {
		search = search[:200]
	}
	status := ""
	if q.Get("status") == "active" || q.Get("active_only") == "true" {
		status = "active"
	}
	list, err := h.svc.ListProjects(r.Context(), h.actor(r), management.ProjectQuery{
		Search: search, ActiveOnly: status == "active", Page: page, PageSize: size,
	})
	if err != nil {
		return err
	}
	keep := url.Values{}
	for k, v := range map[string]string{"search": search, "status": status} {
		if v != "" {
			keep.Set(k, v)
		}
	}
	if size != listPageSize {
		keep.Set("size", strconv.Itoa(size))
	}
	h.render(w, r, http.StatusOK, templates.Projects(h.page(r, "Projects", "projects"), templates.ProjectsData{
		Projects: list.Projects, Search: search, Status: status,
		Pager: templates.Pager{Pagination: list.Pagination, Query: keep, Path: "/projects"},
	}))
	return nil
}

func (h *handler) projectNew(w http.ResponseWriter, r *http.Request) error {
	h.render(w, r, http.StatusOK, templates.ProjectNew(h.page(r, "Create Project", "projects"), templates.ProjectFormData{}))
	return nil
}

func (h *handler) projectCreate(w http.ResponseWriter, r *http.Request) error {
	f := r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	key := strings.TrimSpace(f.Get("api_key"))
	in := management.CreateProjectInput{Name: name, APIKey: key}
	pl, err := readProjectLimits(f)
	in.Limits, in.TokenDefaults = pl.limits, pl.defaults
	limVals, defVals := pl.limitVals, pl.defaultVals
	var p mgmtapi.Project
	if err == nil {
		p, err = h.svc.CreateProject(r.Context(), h.actor(r), in)
	}
	if err != nil {
		if formError(err) {
			pg := h.page(r, "Create Project", "projects")
			pg.Error = llmproxy.ErrorMessage(err)
			h.render(w, r, web.StatusOf(err), templates.ProjectNew(pg, templates.ProjectFormData{Name: name, Limits: limVals, TokenDefaults: defVals}))
			return nil
		}
		return err
	}
	h.redirect(w, r, "/projects/"+p.ID, "done", "project_created")
	return nil
}

func (h *handler) projectShow(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	p, err := h.svc.GetProject(ctx, h.actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	toks, total, err := h.reader.ListTokens(ctx, store.TokenFilter{ProjectID: p.ID, Page: store.Page{Number: 1, Size: 10}})
	if err != nil {
		return err
	}
	d := templates.ProjectShowData{Project: p, TokensTotal: total, Now: h.clock()}
	for _, t := range toks {
		d.Tokens = append(d.Tokens, tokenView(t))
	}
	h.render(w, r, http.StatusOK, templates.ProjectShow(h.page(r, p.Name, "projects"), d))
	return nil
}

func (h *handler) projectEdit(w http.ResponseWriter, r *http.Request) error {
	p, err := h.svc.GetProject(r.Context(), h.actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.ProjectEdit(h.page(r, "Edit Project", "projects"), templates.ProjectFormData{
		Project: p, Name: p.Name, Limits: templates.LimitValuesOf(p.Limits), TokenDefaults: templates.LimitValuesOf(p.TokenDefaults),
	}))
	return nil
}

// method is the request's method after the _method override of HTML forms.
func method(r *http.Request, def string) string {
	if r.Method != http.MethodPost {
		return r.Method
	}
	if m := strings.ToUpper(strings.TrimSpace(r.PostForm.Get("_method"))); m != "" {
		return m
	}
	return def
}

// lastValue is the last value of a form field (a hidden "false" followed by
// a checked checkbox's "true" yields true), and whether it was sent.
func lastValue(f url.Values, key string) (string, bool) {
	v, ok := f[key]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

func (h *handler) projectPost(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	switch method(r, http.MethodPut) {
	case http.MethodPut, http.MethodPatch:
	case http.MethodDelete:
		return llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed,
			"Projects cannot be deleted; deactivate the project instead.")
	default:
		return llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed, "method not allowed")
	}
	var in management.UpdateProjectInput
	f := r.PostForm
	if _, ok := f["name"]; ok {
		name := strings.TrimSpace(f.Get("name"))
		in.Name = &name
	}
	if key := strings.TrimSpace(f.Get("api_key")); key != "" {
		in.APIKey = &key
	}
	var active *bool
	if v, ok := lastValue(f, "is_active"); ok {
		b := v == "true" || v == "on" || v == "1"
		active = &b
		in.IsActive = active
	}
	// Limit fields that were sent replace the stored values; a blank field
	// is unlimited (0).
	pl, err := readProjectLimits(f)
	in.Limits, in.TokenDefaults = pl.limits, pl.defaults
	limVals, defVals := pl.limitVals, pl.defaultVals
	var p mgmtapi.Project
	if err == nil {
		p, err = h.svc.UpdateProject(r.Context(), h.actor(r), id, in)
	}
	if err != nil {
		// The edit form (it sends the name) shows the error next to the
		// fields, with what was typed.
		if formError(err) && in.Name != nil {
			cur, gerr := h.svc.GetProject(r.Context(), h.actor(r), id)
			if gerr != nil {
				return err
			}
			if active != nil {
				cur.IsActive = *active
			}
			if pl.limits == nil {
				limVals = templates.LimitValuesOf(cur.Limits)
			}
			if pl.defaults == nil {
				defVals = templates.LimitValuesOf(cur.TokenDefaults)
			}
			pg := h.page(r, "Edit Project", "projects")
			pg.Error = llmproxy.ErrorMessage(err)
			h.render(w, r, web.StatusOf(err), templates.ProjectEdit(pg, templates.ProjectFormData{
				Project: cur, Name: *in.Name, Limits: limVals, TokenDefaults: defVals,
			}))
			return nil
		}
		return err
	}
	done := "project_updated"
	if in.Name == nil && active != nil {
		done = "project_activated"
		if !*active {
			done = "project_deactivated"
		}
	}
	h.redirect(w, r, "/projects/"+p.ID, "done", done)
	return nil
}

func (h *handler) projectRevokeTokens(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if r.PostForm.Get("confirm") != "yes" {
		p, err := h.svc.GetProject(r.Context(), h.actor(r), id)
		if err != nil {
			return err
		}
		h.render(w, r, http.StatusOK, templates.Confirm(h.page(r, "Revoke All Tokens", "projects"), templates.ConfirmData{
			Heading: "Revoke All Tokens", Message: templates.RevokeAllMessage(p.Name),
			Action: "/projects/" + p.ID + "/revoke-tokens", Button: "Revoke All Tokens", CancelPath: "/projects/" + p.ID,
		}))
		return nil
	}
	res, err := h.svc.RevokeProjectTokens(r.Context(), h.actor(r), id)
	if err != nil {
		return err
	}
	h.redirect(w, r, "/projects/"+id, "done", "tokens_revoked", "n", strconv.Itoa(res.Revoked))
	return nil
}

// formError reports whether err is the user's to fix on the form (shown
// next to it) rather than a page-level error.
func formError(err error) bool {
	return errors.Is(err, llmproxy.ErrInvalid) || errors.Is(err, llmproxy.ErrConflict) || errors.Is(err, llmproxy.ErrForbidden)
}

// tokenView mirrors management's token view for tokens read through the
// Reader: only the hint, never the hash.
func tokenView(t llmproxy.Token) mgmtapi.Token {
	var mr *int64
	if t.MaxRequests != nil && *t.MaxRequests > 0 {
		v := *t.MaxRequests
		mr = &v
	}
	return mgmtapi.Token{
		ID: t.ID, Token: t.Hint, ProjectID: t.ProjectID, ExpiresAt: t.ExpiresAt, IsActive: t.IsActive,
		DeactivatedAt: t.DeactivatedAt, RequestCount: t.RequestCount, MaxRequests: mr, CreatedAt: t.CreatedAt,
		LastUsedAt: t.LastUsedAt, CacheHitCount: t.CacheHitCount, Limits: t.Limits,
	}
}

// projectLimitsForm is what a project form sent of its two limit groups: nil
// for a group that was not sent (left unchanged), the raw values to
// re-render the form with.
type projectLimitsForm struct {
	limits, defaults       *llmproxy.Limits
	limitVals, defaultVals templates.LimitValues
}

// readProjectLimits reads the project's own limits and its token defaults;
// a blank field is unlimited (0).
func readProjectLimits(f url.Values) (projectLimitsForm, error) {
	var out projectLimitsForm
	lim, limVals, limSent, _, err := readLimits(f, projectLimits, llmproxy.Limits{})
	def, defVals, defSent, _, derr := readLimits(f, tokenDefaults, llmproxy.Limits{})
	out.limitVals, out.defaultVals = limVals, defVals
	if limSent {
		out.limits = &lim
	}
	if defSent {
		out.defaults = &def
	}
	if err == nil {
		err = derr
	}
	return out, err
}
