package management

import (
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/store"
)

// DefaultPageSize is used when a list request names none.
const DefaultPageSize = 20

// maxPage bounds page numbers so offsets stay sane.
const maxPage = 1_000_000

// pageOf validates page numbers given to the service: 0 means the default,
// negatives are rejected, sizes above store.MaxPageSize are capped.
func pageOf(page, size int) (store.Page, error) {
	switch {
	case page < 0 || page > maxPage:
		return store.Page{}, invalidf("page must be a positive integer")
	case size < 0:
		return store.Page{}, invalidf("page_size must be between 1 and 100")
	}
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	if size > store.MaxPageSize {
		size = store.MaxPageSize
	}
	return store.Page{Number: page, Size: size}, nil
}

// ParsePage reads page and page_size from a query. Absent values take the
// defaults; page_size=0, negatives and non-numbers are errors; page_size
// above 100 is capped.
func ParsePage(q url.Values) (page, size int, err error) {
	page, size = 1, DefaultPageSize
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPage {
			return 0, 0, invalidf("page must be a positive integer")
		}
		page = n
	}
	sv := q.Get("page_size")
	if sv == "" {
		sv = q.Get("pageSize")
	}
	if sv != "" {
		n, err := strconv.Atoi(sv)
		if err != nil || n < 1 {
			return 0, 0, invalidf("page_size must be between 1 and 100")
		}
		size = min(n, store.MaxPageSize)
	}
	return page, size, nil
}

// first returns the first non-empty value of the given query keys (the
// original's camelCase names are accepted too).
func first(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

func parseBool(q url.Values, keys ...string) (bool, error) {
	v := first(q, keys...)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(strings.ToLower(v))
	if err != nil {
		return false, invalidf(keys[0] + " must be true or false")
	}
	return b, nil
}

// ParseProjectQuery reads GET /manage/projects query parameters: search,
// active_only (activeOnly), page, page_size.
func ParseProjectQuery(q url.Values) (ProjectQuery, error) {
	page, size, err := ParsePage(q)
	if err != nil {
		return ProjectQuery{}, err
	}
	active, err := parseBool(q, "active_only", "activeOnly")
	if err != nil {
		return ProjectQuery{}, err
	}
	return ProjectQuery{Search: truncate(q.Get("search"), 200), ActiveOnly: active, Page: page, PageSize: size}, nil
}

// ParseTokenQuery reads GET /manage/tokens query parameters: project_id
// (projectId), active_only (activeOnly), page, page_size.
func ParseTokenQuery(q url.Values) (TokenQuery, error) {
	page, size, err := ParsePage(q)
	if err != nil {
		return TokenQuery{}, err
	}
	active, err := parseBool(q, "active_only", "activeOnly")
	if err != nil {
		return TokenQuery{}, err
	}
	return TokenQuery{ProjectID: first(q, "project_id", "projectId"), ActiveOnly: active, Page: page, PageSize: size}, nil
}

// ParseAuditQuery reads GET /manage/audit query parameters: action, outcome,
// actor, project_id, token_id, client_ip, request_id, method, path,
// start_time, end_time (RFC 3339), search, page, page_size.
func ParseAuditQuery(q url.Values) (AuditQuery, error) {
	page, size, err := ParsePage(q)
	if err != nil {
		return AuditQuery{}, err
	}
	aq := AuditQuery{
		Action: q.Get("action"), Outcome: q.Get("outcome"), Actor: q.Get("actor"),
		ProjectID: first(q, "project_id", "projectId"), TokenID: first(q, "token_id", "tokenId"),
		ClientIP: q.Get("client_ip"), RequestID: q.Get("request_id"), Method: q.Get("method"),
		Path: q.Get("path"), Search: truncate(q.Get("search"), 200), Page: page, PageSize: size,
	}
	for _, t := range []struct {
		key string
		dst **time.Time
	}{{"start_time", &aq.Since}, {"end_time", &aq.Until}} {
		v := q.Get(t.key)
		if v == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return AuditQuery{}, invalidf(t.key + " must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
		}
		ts = ts.UTC()
		*t.dst = &ts
	}
	return aq, nil
}
