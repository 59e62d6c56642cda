package manage

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// command is one `resource action`.
type command struct {
	args    int    // positional arguments
	argName string // e.g. "<id>"
	// flags registers the command's flags and returns its body.
	flags func(fs *flag.FlagSet) func(ctx context.Context, c *call, pos []string) error
}

// Wire types (the API's JSON).
type project struct {
	ID            string         `json:"id"`
	Name          string         `json:"name"`
	APIKey        string         `json:"api_key"`
	IsActive      bool           `json:"is_active"`
	DeactivatedAt *time.Time     `json:"deactivated_at"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	Limits        map[string]any `json:"limits"`
	TokenDefaults map[string]any `json:"token_defaults"`
}

type token struct {
	ID            string         `json:"id"`
	Token         string         `json:"token"`
	ProjectID     string         `json:"project_id"`
	ExpiresAt     *time.Time     `json:"expires_at"`
	IsActive      bool           `json:"is_active"`
	DeactivatedAt *time.Time     `json:"deactivated_at"`
	RequestCount  int64          `json:"request_count"`
	MaxRequests   *int64         `json:"max_requests"`
	CreatedAt     time.Time      `json:"created_at"`
	LastUsedAt    *time.Time     `json:"last_used_at"`
	CacheHitCount int64          `json:"cache_hit_count"`
	Limits        map[string]any `json:"limits"`
}

type auditEvent struct {
	ID        string         `json:"id"`
	Seq       int64          `json:"seq"`
	Timestamp time.Time      `json:"timestamp"`
	Action    string         `json:"action"`
	Actor     string         `json:"actor"`
	Outcome   string         `json:"outcome"`
	ProjectID string         `json:"project_id"`
	TokenID   string         `json:"token_id"`
	RequestID string         `json:"request_id"`
	ClientIP  string         `json:"client_ip"`
	Method    string         `json:"method"`
	Path      string         `json:"path"`
	UserAgent string         `json:"user_agent"`
	Reason    string         `json:"reason"`
	Details   map[string]any `json:"details"`
	KeyID     string         `json:"key_id"`
	Hash      string         `json:"hash"`
}

var commands = map[string]command{
	"project list":          {flags: projectList},
	"project get":           {args: 1, argName: "<project-id>", flags: simple("GET", "/manage/projects/%s", printProject)},
	"project create":        {flags: projectCreate},
	"project update":        {args: 1, argName: "<project-id>", flags: projectUpdate},
	"project activate":      {args: 1, argName: "<project-id>", flags: projectSetActive(true)},
	"project deactivate":    {args: 1, argName: "<project-id>", flags: projectSetActive(false)},
	"project revoke-tokens": {args: 1, argName: "<project-id>", flags: simple("POST", "/manage/projects/%s/tokens/revoke", printRevoke)},
	"project delete":        {args: 1, argName: "<project-id>", flags: simple("DELETE", "/manage/projects/%s", nil)},
	"token generate":        {flags: tokenGenerate},
	"token list":            {flags: tokenList},
	"token get":             {args: 1, argName: "<token-id>", flags: simple("GET", "/manage/tokens/%s", printToken)},
	"token update":          {args: 1, argName: "<token-id>", flags: tokenUpdate},
	"token revoke":          {args: 1, argName: "<token-id>", flags: tokenRevoke},
	"audit list":            {flags: auditList},
	"audit get":             {args: 1, argName: "<audit-event-id>", flags: simple("GET", "/manage/audit/%s", printAudit)},
	"cache purge":           {flags: cachePurge},
	"usage show":            {flags: usageShow},
}

// simple is a command that sends one request about one id and prints the
// answer with show (JSON with --json).
func simple(method, pathFmt string, show func(c *call, r *response) error) func(*flag.FlagSet) func(context.Context, *call, []string) error {
	return func(*flag.FlagSet) func(context.Context, *call, []string) error {
		return func(ctx context.Context, c *call, pos []string) error {
			r, err := c.do(ctx, method, fmt.Sprintf(pathFmt, url.PathEscape(pos[0])), nil, nil)
			if err != nil {
				return err
			}
			if c.g.json || show == nil {
				return c.printJSON(r.body)
			}
			return show(c, r)
		}
	}
}

// maxPageSize is the management API's largest page (store.MaxPageSize).
const maxPageSize = 100

// boundedInt is a flag value: a whole number from lo to hi, else a usage
// error, the same for 500 as for abc.
func boundedInt(dst *int, lo, hi int) func(string) error {
	return func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be a whole number from %d to %d", lo, hi)
		}
		*dst = n
		return nil
	}
}

// pageFlags registers --page and --page-size.
func pageFlags(fs *flag.FlagSet) func(q url.Values) {
	var page, size int
	fs.Func("page", "page number (from 1)", boundedInt(&page, 1, math.MaxInt32))
	fs.Func("page-size", fmt.Sprintf("page size (1 to %d)", maxPageSize), boundedInt(&size, 1, maxPageSize))
	return func(q url.Values) {
		if page != 0 {
			q.Set("page", strconv.Itoa(page))
		}
		if size != 0 {
			q.Set("page_size", strconv.Itoa(size))
		}
	}
}

func projectList(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	search := fs.String("search", "", "name contains")
	active := fs.Bool("active-only", false, "only active projects")
	paging := pageFlags(fs)
	return func(ctx context.Context, c *call, _ []string) error {
		q := url.Values{}
		if *search != "" {
			q.Set("search", *search)
		}
		if *active {
			q.Set("active_only", "true")
		}
		paging(q)
		r, err := c.do(ctx, "GET", "/manage/projects", q, nil)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var ps []project
		if err := r.decode(&ps); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tACTIVE\tAPI KEY\tCREATED")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", p.ID, p.Name, p.IsActive, p.APIKey, ts(&p.CreatedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return footer(c, r, len(ps))
	}
}

func footer(c *call, r *response, n int) error {
	if total := r.header.Get("X-Total-Count"); total != "" {
		_, err := fmt.Fprintf(c.out, "(%d shown, %s total)\n", n, total)
		return err
	}
	return nil
}

func projectCreate(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	name := fs.String("name", "", "project name (required)")
	key := fs.String("api-key", "", "upstream API key (required)")
	fs.StringVar(key, "openai-key", "", "alias of --api-key")
	limits := registerLimits(fs, "", "project limit (sum over its tokens)")
	defaults := registerLimits(fs, "token-default-", "default for new tokens")
	return func(ctx context.Context, c *call, _ []string) error {
		if *name == "" || *key == "" {
			return usagef("project create needs --name and --api-key")
		}
		body := map[string]any{"name": *name, "api_key": *key}
		if limits.given() {
			body["limits"] = limits.set()
		}
		if defaults.given() {
			body["token_defaults"] = defaults.set()
		}
		r, err := c.do(ctx, "POST", "/manage/projects", nil, body)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		return printProject(c, r)
	}
}

// optBool is a flag that records whether it was set.
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o.v == nil {
		return ""
	}
	return strconv.FormatBool(*o.v)
}

func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	o.v = &b
	return nil
}

// optString records whether it was set.
type optString struct{ v *string }

func (o *optString) String() string {
	if o.v == nil {
		return ""
	}
	return *o.v
}
func (o *optString) Set(s string) error { o.v = &s; return nil }

func projectUpdate(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	var name, key optString
	var active optBool
	fs.Var(&name, "name", "new name")
	fs.Var(&key, "api-key", "new upstream API key")
	fs.Var(&key, "openai-key", "alias of --api-key")
	fs.Var(&active, "active", "true to activate, false to deactivate")
	limits := registerLimits(fs, "", "project limit (sum over its tokens)")
	defaults := registerLimits(fs, "token-default-", "default for new tokens")
	return func(ctx context.Context, c *call, pos []string) error {
		body := map[string]any{}
		if limits.given() || defaults.given() {
			// PATCH replaces a limits object as a whole: start from the
			// current values so that limits not given stay as they are.
			cur, err := fetchLimits(ctx, c, projectPath(pos[0]))
			if err != nil {
				return err
			}
			if limits.given() {
				body["limits"] = limits.over(cur.Limits)
			}
			if defaults.given() {
				body["token_defaults"] = defaults.over(cur.TokenDefaults)
			}
		}
		if name.v != nil {
			body["name"] = *name.v
		}
		if key.v != nil {
			body["api_key"] = *key.v
		}
		if active.v != nil {
			body["is_active"] = *active.v
		}
		if len(body) == 0 {
			return usagef("project update needs at least one of --name, --api-key, --active or a limit flag")
		}
		return patchProject(ctx, c, pos[0], body)
	}
}

func patchProject(ctx context.Context, c *call, id string, body map[string]any) error {
	r, err := c.do(ctx, "PATCH", "/manage/projects/"+url.PathEscape(id), nil, body)
	if err != nil {
		return err
	}
	if c.g.json {
		return c.printJSON(r.body)
	}
	return printProject(c, r)
}

func projectSetActive(active bool) func(*flag.FlagSet) func(context.Context, *call, []string) error {
	return func(fs *flag.FlagSet) func(context.Context, *call, []string) error {
		revoke := new(bool)
		if !active {
			revoke = fs.Bool("revoke-tokens", false, "also revoke every token of the project")
		}
		return func(ctx context.Context, c *call, pos []string) error {
			body := map[string]any{"is_active": active}
			if *revoke {
				body["revoke_tokens"] = true
			}
			return patchProject(ctx, c, pos[0], body)
		}
	}
}

var minutesRE = regexp.MustCompile(`^[0-9]+$`)

func tokenGenerate(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	projectID := fs.String("project-id", "", "project id (required)")
	duration := fs.String("duration", "", `lifetime: minutes (as in the original, default 1440) or a duration such as "24h", "30d"`)
	expiresAt := fs.String("expires-at", "", "expiry time (RFC 3339) instead of --duration")
	maxReq := fs.Int64("max-requests", 0, "lifetime request quota (0: unlimited)")
	limits := registerLimits(fs, "", "token limit")
	return func(ctx context.Context, c *call, _ []string) error {
		if *projectID == "" {
			return usagef("token generate needs --project-id")
		}
		body := map[string]any{"project_id": *projectID}
		switch {
		case *expiresAt != "" && *duration != "":
			return usagef("give either --duration or --expires-at")
		case *expiresAt != "":
			t, err := time.Parse(time.RFC3339, *expiresAt)
			if err != nil {
				return usagef("--expires-at must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
			}
			body["expires_at"] = t
		case *duration == "":
			body["duration_minutes"] = 1440
		case minutesRE.MatchString(*duration):
			n, err := strconv.ParseInt(*duration, 10, 64)
			if err != nil {
				return usagef("--duration: %v", err)
			}
			body["duration_minutes"] = n
		default:
			body["duration"] = *duration
		}
		if *maxReq < 0 {
			return usagef("--max-requests must be >= 0")
		}
		if *maxReq > 0 {
			body["max_requests"] = *maxReq
		}
		if limits.given() {
			// Given limits replace the project's token_defaults as a whole:
			// start from them so that limits not given keep the default.
			cur, err := fetchLimits(ctx, c, projectPath(*projectID))
			if err != nil {
				return err
			}
			body["limits"] = limits.over(cur.TokenDefaults)
		}
		r, err := c.do(ctx, "POST", "/manage/tokens", nil, body)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var t struct {
			ID          string         `json:"id"`
			Token       string         `json:"token"`
			ProjectID   string         `json:"project_id"`
			ExpiresAt   *time.Time     `json:"expires_at"`
			MaxRequests *int64         `json:"max_requests"`
			Limits      map[string]any `json:"limits"`
		}
		if err := r.decode(&t); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "Token:\t%s\n", t.Token)
		fmt.Fprintf(tw, "ID:\t%s\n", t.ID)
		fmt.Fprintf(tw, "Project:\t%s\n", t.ProjectID)
		fmt.Fprintf(tw, "Expires:\t%s\n", ts(t.ExpiresAt))
		fmt.Fprintf(tw, "Max requests:\t%s\n", maxStr(t.MaxRequests))
		fmt.Fprintf(tw, "Limits:\t%s\n", limitsStr(t.Limits))
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(c.out, "Use it: OPENAI_BASE_URL=%s OPENAI_API_KEY=%s\n", c.g.openAIBaseURL(), t.Token)
		_, err = fmt.Fprintln(c.out, "Store the token now: it is not shown again.")
		return err
	}
}

func tokenList(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	projectID := fs.String("project-id", "", "only tokens of this project")
	active := fs.Bool("active-only", false, "only active, unexpired tokens")
	paging := pageFlags(fs)
	return func(ctx context.Context, c *call, _ []string) error {
		q := url.Values{}
		if *projectID != "" {
			q.Set("project_id", *projectID)
		}
		if *active {
			q.Set("active_only", "true")
		}
		paging(q)
		r, err := c.do(ctx, "GET", "/manage/tokens", q, nil)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var list []token
		if err := r.decode(&list); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTOKEN\tPROJECT\tACTIVE\tEXPIRES\tREQUESTS\tMAX\tLAST USED")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%d\t%s\t%s\n", t.ID, t.Token, t.ProjectID, t.IsActive,
				ts(t.ExpiresAt), t.RequestCount, maxStr(t.MaxRequests), ts(t.LastUsedAt))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return footer(c, r, len(list))
	}
}

func tokenUpdate(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	var active optBool
	var maxReq, expires optString
	fs.Var(&active, "active", "true to reactivate, false to revoke")
	fs.Var(&maxReq, "max-requests", "lifetime request quota (0: unlimited)")
	fs.Var(&expires, "expires-at", `new expiry (RFC 3339) or "never"`)
	limits := registerLimits(fs, "", "token limit")
	return func(ctx context.Context, c *call, pos []string) error {
		body := map[string]any{}
		if limits.given() {
			// PATCH replaces the limits object as a whole: start from the
			// token's current limits so that limits not given stay.
			cur, err := fetchLimits(ctx, c, tokenPath(pos[0]))
			if err != nil {
				return err
			}
			body["limits"] = limits.over(cur.Limits)
		}
		if active.v != nil {
			body["is_active"] = *active.v
		}
		if maxReq.v != nil {
			n, err := strconv.ParseInt(*maxReq.v, 10, 64)
			if err != nil || n < 0 {
				return usagef("--max-requests must be a number >= 0")
			}
			body["max_requests"] = n
		}
		if expires.v != nil {
			if *expires.v == "never" {
				body["expires_at"] = nil
			} else {
				t, err := time.Parse(time.RFC3339, *expires.v)
				if err != nil {
					return usagef(`--expires-at must be an RFC 3339 time or "never"`)
				}
				body["expires_at"] = t
			}
		}
		if len(body) == 0 {
			return usagef("token update needs at least one of --active, --max-requests, --expires-at or a limit flag")
		}
		r, err := c.do(ctx, "PATCH", "/manage/tokens/"+url.PathEscape(pos[0]), nil, body)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		return printToken(c, r)
	}
}

func tokenRevoke(*flag.FlagSet) func(context.Context, *call, []string) error {
	return func(ctx context.Context, c *call, pos []string) error {
		if _, err := c.do(ctx, "DELETE", "/manage/tokens/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		if c.g.json {
			return c.printValue(map[string]any{"id": pos[0], "revoked": true})
		}
		_, err := fmt.Fprintf(c.out, "Token %s revoked.\n", pos[0])
		return err
	}
}

func auditList(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	names := []string{"action", "outcome", "actor", "project-id", "token-id", "client-ip", "request-id",
		"method", "path", "start-time", "end-time", "search"}
	vals := map[string]*string{}
	for _, n := range names {
		vals[n] = fs.String(n, "", "filter: "+n)
	}
	paging := pageFlags(fs)
	return func(ctx context.Context, c *call, _ []string) error {
		q := url.Values{}
		for _, n := range names {
			if v := *vals[n]; v != "" {
				q.Set(strings.ReplaceAll(n, "-", "_"), v)
			}
		}
		paging(q)
		r, err := c.do(ctx, "GET", "/manage/audit", q, nil)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var res struct {
			Events     []auditEvent `json:"events"`
			Pagination struct {
				Page       int `json:"page"`
				TotalPages int `json:"total_pages"`
				TotalCount int `json:"total_count"`
			} `json:"pagination"`
		}
		if err := r.decode(&res); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTIME\tACTION\tOUTCOME\tACTOR\tPROJECT\tCLIENT IP\tREASON")
		for _, e := range res.Events {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", esc(e.ID), ts(&e.Timestamp), esc(e.Action), esc(e.Outcome), esc(e.Actor),
				esc(dash(e.ProjectID)), esc(dash(e.ClientIP)), esc(dash(e.Reason)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "(page %d of %d, %s)\n", res.Pagination.Page, max(res.Pagination.TotalPages, 1), plural(res.Pagination.TotalCount, "event", "events"))
		return err
	}
}

func cachePurge(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	all := fs.Bool("all", false, "purge every cached response")
	projectID := fs.String("project-id", "", "purge the project's responses")
	method := fs.String("method", "", "with --path: purge one exact request")
	path := fs.String("path", "", "request path, e.g. /v1/chat/completions")
	body := fs.String("body", "", "request body of the exact request")
	return func(ctx context.Context, c *call, _ []string) error {
		req := map[string]any{}
		switch {
		case *all:
			req["all"] = true
		case *projectID != "":
			req["project_id"] = *projectID
			if *method != "" || *path != "" {
				req["method"], req["path"], req["body"] = *method, *path, *body
			}
		default:
			return usagef("cache purge needs --all or --project-id")
		}
		r, err := c.do(ctx, "POST", "/manage/cache/purge", nil, req)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var res struct {
			Deleted int `json:"deleted"`
		}
		if err := r.decode(&res); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "Purged %s.\n", plural(res.Deleted, "cached response", "cached responses"))
		return err
	}
}

func printProject(c *call, r *response) error {
	var p project
	if err := r.decode(&p); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", p.ID)
	fmt.Fprintf(tw, "Name:\t%s\n", p.Name)
	fmt.Fprintf(tw, "API key:\t%s\n", p.APIKey)
	fmt.Fprintf(tw, "Active:\t%t\n", p.IsActive)
	fmt.Fprintf(tw, "Deactivated:\t%s\n", ts(p.DeactivatedAt))
	fmt.Fprintf(tw, "Created:\t%s\n", ts(&p.CreatedAt))
	fmt.Fprintf(tw, "Updated:\t%s\n", ts(&p.UpdatedAt))
	fmt.Fprintf(tw, "Limits:\t%s\n", limitsStr(p.Limits))
	fmt.Fprintf(tw, "Token defaults:\t%s\n", limitsStr(p.TokenDefaults))
	return tw.Flush()
}

func printToken(c *call, r *response) error {
	var t token
	if err := r.decode(&t); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "ID:\t%s\n", t.ID)
	fmt.Fprintf(tw, "Token:\t%s\n", t.Token)
	fmt.Fprintf(tw, "Project:\t%s\n", t.ProjectID)
	fmt.Fprintf(tw, "Active:\t%t\n", t.IsActive)
	fmt.Fprintf(tw, "Deactivated:\t%s\n", ts(t.DeactivatedAt))
	fmt.Fprintf(tw, "Expires:\t%s\n", ts(t.ExpiresAt))
	fmt.Fprintf(tw, "Requests:\t%d\n", t.RequestCount)
	fmt.Fprintf(tw, "Max requests:\t%s\n", maxStr(t.MaxRequests))
	fmt.Fprintf(tw, "Cache hits:\t%d\n", t.CacheHitCount)
	fmt.Fprintf(tw, "Created:\t%s\n", ts(&t.CreatedAt))
	fmt.Fprintf(tw, "Last used:\t%s\n", ts(t.LastUsedAt))
	fmt.Fprintf(tw, "Limits:\t%s\n", limitsStr(t.Limits))
	return tw.Flush()
}

func printRevoke(c *call, r *response) error {
	var res struct {
		Revoked        int `json:"revoked_count"`
		AlreadyRevoked int `json:"already_revoked_count"`
		Total          int `json:"total_tokens"`
	}
	if err := r.decode(&res); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.out, "Revoked %s (%d already revoked, %d in total).\n", plural(res.Revoked, "token", "tokens"), res.AlreadyRevoked, res.Total)
	return err
}

// printAudit prints one audit record. Much of a record is the client's
// choice (the path, the user agent, names), so every value is shown with
// control characters escaped (esc): a record cannot drive the terminal.
func printAudit(c *call, r *response) error {
	var e auditEvent
	if err := r.decode(&e); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	for _, row := range []struct{ label, value string }{
		{"ID", e.ID},
		{"Seq", strconv.FormatInt(e.Seq, 10)},
		{"Time", ts(&e.Timestamp)},
		{"Action", e.Action},
		{"Outcome", e.Outcome},
		{"Actor", e.Actor},
		{"Project", dash(e.ProjectID)},
		{"Token", dash(e.TokenID)},
		{"Request ID", dash(e.RequestID)},
		{"Client IP", dash(e.ClientIP)},
		{"Request", e.Method + " " + e.Path},
		{"User agent", dash(e.UserAgent)},
		{"Reason", dash(e.Reason)},
		{"Details", compact(e.Details)},
		{"Key ID", dash(e.KeyID)},
		{"Hash", e.Hash},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row.label, esc(row.value))
	}
	return tw.Flush()
}

// esc shows control characters (and bidirectional overrides) escaped.
func esc(s string) string { return llmproxy.EscapeControl(s) }

func ts(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func maxStr(v *int64) string {
	if v == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*v, 10)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func compact(m map[string]any) string {
	if len(m) == 0 {
		return "-"
	}
	b, _ := json.Marshal(m)
	return string(b)
}
