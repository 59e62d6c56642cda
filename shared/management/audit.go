package management

import (
	"context"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// ListAudit returns a page of audit events, newest first (audited as
// audit.list). Events is never nil.
func (s *Service) ListAudit(ctx context.Context, a Actor, q AuditQuery) (mgmtapi.AuditList, error) {
	page, err := pageOf(q.Page, q.PageSize)
	if err != nil {
		return mgmtapi.AuditList{}, s.fail(ctx, a, ActionAuditList, err, nil)
	}
	if q.Since != nil && q.Until != nil && q.Until.Before(*q.Since) {
		return mgmtapi.AuditList{}, s.fail(ctx, a, ActionAuditList, invalidf("end_time must not be before start_time"), nil)
	}
	f := store.AuditFilter{
		Action: q.Action, Outcome: q.Outcome, Actor: q.Actor, ProjectID: q.ProjectID, TokenID: q.TokenID,
		ClientIP: q.ClientIP, RequestID: q.RequestID, Method: q.Method, Path: q.Path,
		Since: q.Since, Until: q.Until, Search: q.Search, Page: page,
	}
	details := map[string]any{"page": page.Number, "page_size": page.Limit()}
	evs, total, err := s.store.ListAudit(ctx, f)
	if err != nil {
		err = translate(err, msgAuditEventNotFound)
		return mgmtapi.AuditList{}, s.record(ctx, s.event(a, ActionAuditList, err, details), err)
	}
	out := mgmtapi.AuditList{Events: make([]mgmtapi.AuditEvent, 0, len(evs)), Pagination: mgmtapi.NewPagination(page.Number, page.Limit(), total)}
	for _, e := range evs {
		out.Events = append(out.Events, audit.FileRecord(e))
	}
	details["events_count"] = len(out.Events)
	details["total_count"] = total
	return out, s.record(ctx, s.event(a, ActionAuditList, nil, details), nil)
}

// GetAudit returns one audit event (audited as audit.show).
func (s *Service) GetAudit(ctx context.Context, a Actor, id string) (mgmtapi.AuditEvent, error) {
	details := map[string]any{"audit_event_id": truncate(id, 64)}
	if !validID(id) {
		return mgmtapi.AuditEvent{}, s.fail(ctx, a, ActionAuditShow, notFound(msgAuditEventNotFound), details)
	}
	e, err := s.store.GetAudit(ctx, id)
	if err != nil {
		err = translate(err, msgAuditEventNotFound)
		return mgmtapi.AuditEvent{}, s.record(ctx, s.event(a, ActionAuditShow, err, details), err)
	}
	return audit.FileRecord(e), s.record(ctx, s.event(a, ActionAuditShow, nil, details), nil)
}

// PurgeCache deletes cached responses (audited as cache.purge). A nil purger
// means caching is disabled (400).
func (s *Service) PurgeCache(ctx context.Context, a Actor, p CachePurger, in PurgeCacheInput) (mgmtapi.PurgeResult, error) {
	details := map[string]any{}
	if p == nil {
		details["reason"] = "caching_disabled"
		return mgmtapi.PurgeResult{}, s.fail(ctx, a, ActionCachePurge, invalidf(msgCachingDisabled), details)
	}
	req, kind, err := purgeRequest(in)
	details["purge_type"] = kind
	if err != nil {
		details["reason"] = "missing_fields"
		return mgmtapi.PurgeResult{}, s.fail(ctx, a, ActionCachePurge, err, details)
	}
	if kind != "all" {
		if _, err := s.getProject(ctx, in.ProjectID); err != nil {
			details["provided_id"] = truncate(in.ProjectID, 64)
			return mgmtapi.PurgeResult{}, s.fail(ctx, a, ActionCachePurge, err, details)
		}
	}
	if kind == "exact" {
		details["method"], details["path"] = req.Method, truncate(req.Path, 200)
	}
	n, err := p.Purge(ctx, req)
	if err != nil {
		err = translate(err, "cache entry not found")
		e := s.event(a, ActionCachePurge, err, details)
		e.ProjectID = in.ProjectID
		return mgmtapi.PurgeResult{}, s.record(ctx, e, err)
	}
	details["deleted"] = n
	e := s.event(a, ActionCachePurge, nil, details)
	e.ProjectID = in.ProjectID
	return mgmtapi.PurgeResult{Deleted: n, PurgeType: kind}, s.record(ctx, e, nil)
}

func purgeRequest(in PurgeCacheInput) (req llmproxy.CachePurge, kind string, err error) {
	switch {
	case in.All:
		if in.ProjectID != "" || in.Method != "" || in.Path != "" || in.Body != "" {
			return req, "all", invalidf("all cannot be combined with project_id, method, path or body")
		}
		req.All = true
		return req, "all", nil
	case in.ProjectID == "":
		return req, "", invalidf(`project_id is required (or "all": true)`)
	case in.Method == "" && in.Path == "" && in.Body == "" && in.Query == "":
		req.ProjectID = in.ProjectID
		return req, "project", nil
	case in.Method == "" || in.Path == "":
		return req, "exact", invalidf("method and path are required for an exact purge")
	}
	req.ProjectID, req.Method, req.Path, req.Query, req.Body = in.ProjectID, in.Method, in.Path, in.Query, []byte(in.Body)
	return req, "exact", nil
}
