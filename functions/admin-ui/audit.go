package adminui

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/templates"
)

// auditKeys are the audit list's filters (the management API's names).
var auditKeys = []string{"action", "outcome", "actor", "project_id", "token_id", "client_ip", "request_id",
	"method", "path", "search", "start_time", "end_time"}

func (h *handler) auditList(w http.ResponseWriter, r *http.Request) error {
	in := r.URL.Query()
	keep := url.Values{}
	q := url.Values{}
	for _, k := range auditKeys {
		v := in.Get(k)
		if len(v) > 200 {
			v = v[:200]
		}
		if v == "" {
			continue
		}
		keep.Set(k, v)
		if k == "start_time" || k == "end_time" {
			// The form's datetime-local values are UTC; the API wants
			// RFC 3339.
			t, err := parseUTC(v)
			if err != nil {
				return invalid(k + " must be a date and time, e.g. 2026-01-02T15:04")
			}
			v = t.Format("2006-01-02T15:04:05Z07:00")
		}
		q.Set(k, v)
	}
	page, size := listPage(in)
	q.Set("page", strconv.Itoa(page))
	q.Set("page_size", strconv.Itoa(size))
	if size != listPageSize {
		keep.Set("size", strconv.Itoa(size))
	}
	aq, err := management.ParseAuditQuery(q)
	if err != nil {
		return err
	}
	list, err := h.svc.ListAudit(r.Context(), h.actor(r), aq)
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.Audit(h.page(r, "Audit Events", "audit"), templates.AuditData{
		Events: list.Events, Query: keep,
		Pager: templates.Pager{Pagination: list.Pagination, Query: keep, Path: "/audit"},
	}))
	return nil
}

func (h *handler) auditShow(w http.ResponseWriter, r *http.Request) error {
	e, err := h.svc.GetAudit(r.Context(), h.actor(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.AuditShow(h.page(r, "Audit Event Details", "audit"), e))
	return nil
}
