package adminui

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/templates"
)

// Dashboard bounds: the per-project sums look at the most recent tokens
// only, so a huge installation does not make the page slow.
const (
	dashboardTokenPages = 10 // × store.MaxPageSize tokens
	expiringWithin      = 24 * time.Hour
	expiringShown       = 10
	projectRowsShown    = 10
	recentEvents        = 10
)

func isNotFound(err error) bool { return errors.Is(err, llmproxy.ErrNotFound) }

func (h *handler) dashboard(w http.ResponseWriter, r *http.Request) error {
	d, err := h.dashboardData(r.Context())
	if err != nil {
		return err
	}
	h.render(w, r, http.StatusOK, templates.Dashboard(h.page(r, "Dashboard", "dashboard"), d))
	return nil
}

func (h *handler) dashboardData(ctx context.Context) (templates.DashboardData, error) {
	now := h.clock().UTC()
	d := templates.DashboardData{Now: now, ExpiringWithin: "24 hours"}
	one := store.Page{Number: 1, Size: 1}
	_, all, err := h.reader.ListProjects(ctx, store.ProjectFilter{Page: one})
	if err != nil {
		return d, err
	}
	_, active, err := h.reader.ListProjects(ctx, store.ProjectFilter{ActiveOnly: true, Page: one})
	if err != nil {
		return d, err
	}
	d.ActiveProjects, d.InactiveProjects = active, all-active
	if _, d.ActiveTokens, err = h.reader.ListTokens(ctx, store.TokenFilter{ActiveOnly: true, Page: one}); err != nil {
		return d, err
	}

	per := map[string]*templates.ProjectRequests{}
	var expiring []templates.TokenRow
	for page := 1; page <= dashboardTokenPages; page++ {
		toks, total, err := h.reader.ListTokens(ctx, store.TokenFilter{Page: store.Page{Number: page, Size: store.MaxPageSize}})
		if err != nil {
			return d, err
		}
		d.TotalTokens = total
		for _, t := range toks {
			pr := per[t.ProjectID]
			if pr == nil {
				pr = &templates.ProjectRequests{ProjectID: t.ProjectID}
				per[t.ProjectID] = pr
			}
			pr.Tokens++
			pr.Requests += t.RequestCount
			pr.CacheHits += t.CacheHitCount
			d.TotalRequests += t.RequestCount
			if t.Status(now) == llmproxy.TokenValid && t.ExpiresAt != nil && t.ExpiresAt.Sub(now) <= expiringWithin {
				expiring = append(expiring, templates.TokenRow{Token: tokenView(t)})
			}
		}
		if page*store.MaxPageSize >= total {
			break
		}
		if page == dashboardTokenPages {
			d.Partial = true
		}
	}
	sort.Slice(expiring, func(i, j int) bool { return expiring[i].Token.ExpiresAt.Before(*expiring[j].Token.ExpiresAt) })
	if len(expiring) > expiringShown {
		expiring = expiring[:expiringShown]
	}
	rows := make([]templates.ProjectRequests, 0, len(per))
	for _, pr := range per {
		rows = append(rows, *pr)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Requests != rows[j].Requests {
			return rows[i].Requests > rows[j].Requests
		}
		return rows[i].ProjectID < rows[j].ProjectID
	})
	if len(rows) > projectRowsShown {
		rows = rows[:projectRowsShown]
	}
	usage, err := h.reader.ProjectUsage(ctx, now.Add(-24*time.Hour))
	if err != nil {
		return d, err
	}
	sort.Slice(usage, func(i, j int) bool {
		if usage[i].Requests != usage[j].Requests {
			return usage[i].Requests > usage[j].Requests
		}
		return usage[i].ProjectID < usage[j].ProjectID
	})
	if len(usage) > projectRowsShown {
		usage = usage[:projectRowsShown]
	}
	ids := make([]string, 0, len(rows)+len(expiring)+len(usage))
	for _, r := range rows {
		ids = append(ids, r.ProjectID)
	}
	for _, u := range usage {
		ids = append(ids, u.ProjectID)
	}
	for _, t := range expiring {
		ids = append(ids, t.Token.ProjectID)
	}
	names := h.projectNames(ctx, ids...)
	for i := range rows {
		rows[i].Name = names[rows[i].ProjectID]
	}
	for i := range expiring {
		expiring[i].ProjectName = names[expiring[i].Token.ProjectID]
	}
	d.Requests, d.ExpiringSoon = rows, expiring
	for _, u := range usage {
		d.LastDay = append(d.LastDay, templates.ProjectUsage{
			ProjectID: u.ProjectID, Name: names[u.ProjectID], Requests: u.Requests, CacheHits: u.CacheHits,
			PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
		})
	}

	evs, _, err := h.reader.ListAudit(ctx, store.AuditFilter{Page: store.Page{Number: 1, Size: recentEvents}})
	if err != nil {
		return d, err
	}
	for _, e := range evs {
		d.Recent = append(d.Recent, audit.FileRecord(e))
	}
	return d, nil
}
