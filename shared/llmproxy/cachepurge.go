package llmproxy

// CachePurge selects cached responses to delete. Exactly one mode applies:
// All (everything), an exact request (ProjectID, Method, Path, Query, Body:
// the entry that request would hit, under every Vary variant), or a whole
// project (ProjectID only).
type CachePurge struct {
	All       bool
	ProjectID string
	Method    string
	Path      string // e.g. /v1/chat/completions
	Query     string // raw query, may be empty
	Body      []byte
}
