package management

import (
	"context"
	"net/url"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/store"
)

// ActionUsageList is the audit action of reading usage.
const ActionUsageList = "usage.list"

// MaxUsageWindow bounds how far back a usage query may reach.
const MaxUsageWindow = 90 * 24 * time.Hour

// UsageQuery selects the usage window: the last Window (default 24h),
// counted in whole UTC hours, optionally for one project.
type UsageQuery struct {
	Window    time.Duration
	ProjectID string
}

// ProjectUsageResponse is one project's usage over the window.
type ProjectUsageResponse struct {
	ProjectID        string `json:"project_id"`
	Requests         int64  `json:"requests"`
	CacheHits        int64  `json:"cache_hits"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
	TotalTokens      int64  `json:"total_tokens"`
}

// UsageList is the usage of every project with usage since Since.
type UsageList struct {
	Since    time.Time              `json:"since"`
	Projects []ProjectUsageResponse `json:"projects"`
}

// ParseUsageQuery reads `window` (a duration such as 24h, 7d; default 24h,
// at most 90d) and `project_id`.
func ParseUsageQuery(q url.Values) (UsageQuery, error) {
	uq := UsageQuery{Window: 24 * time.Hour, ProjectID: strings.TrimSpace(q.Get("project_id"))}
	if w := q.Get("window"); w != "" {
		d, err := ParseLifetime(w)
		if err != nil || d <= 0 || d > MaxUsageWindow {
			return uq, invalidf("window must be a duration such as 24h or 7d, at most 90d")
		}
		uq.Window = d
	}
	return uq, nil
}

// ProjectUsage returns requests, cache hits and model tokens per project over
// the window, from the hourly aggregates the proxies write in the background
// (audited as usage.list). Projects is never nil.
func (s *Service) ProjectUsage(ctx context.Context, a Actor, q UsageQuery) (UsageList, error) {
	details := map[string]any{"window": q.Window.String()}
	if q.ProjectID != "" {
		details["project_id"] = truncate(q.ProjectID, 64)
	}
	since := store.Hour(s.clock().Add(-q.Window))
	rows, err := s.store.ProjectUsage(ctx, since)
	if err != nil {
		err = translate(err, "usage not found")
		return UsageList{}, s.record(ctx, s.event(a, ActionUsageList, err, details), err)
	}
	out := UsageList{Since: since, Projects: make([]ProjectUsageResponse, 0, len(rows))}
	for _, r := range rows {
		if q.ProjectID != "" && r.ProjectID != q.ProjectID {
			continue
		}
		out.Projects = append(out.Projects, ProjectUsageResponse{
			ProjectID: r.ProjectID, Requests: r.Requests, CacheHits: r.CacheHits,
			PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens,
			TotalTokens: r.PromptTokens + r.CompletionTokens,
		})
	}
	details["project_count"] = len(out.Projects)
	return out, s.record(ctx, s.event(a, ActionUsageList, nil, details), nil)
}
