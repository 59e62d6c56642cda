package manage

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"text/tabwriter"
)

// usageShow prints per-project usage (requests, cache hits, model tokens)
// over a window, from GET /manage/usage.
func usageShow(fs *flag.FlagSet) func(context.Context, *call, []string) error {
	window := fs.String("window", "", "how far back: a duration such as 24h or 7d (default 24h, at most 90d)")
	projectID := fs.String("project-id", "", "only this project")
	return func(ctx context.Context, c *call, _ []string) error {
		q := url.Values{}
		if *window != "" {
			q.Set("window", *window)
		}
		if *projectID != "" {
			q.Set("project_id", *projectID)
		}
		r, err := c.do(ctx, "GET", "/manage/usage", q, nil)
		if err != nil {
			return err
		}
		if c.g.json {
			return c.printJSON(r.body)
		}
		var res struct {
			Since    string `json:"since"`
			Projects []struct {
				ProjectID        string `json:"project_id"`
				Requests         int64  `json:"requests"`
				CacheHits        int64  `json:"cache_hits"`
				PromptTokens     int64  `json:"prompt_tokens"`
				CompletionTokens int64  `json:"completion_tokens"`
			} `json:"projects"`
		}
		if err := r.decode(&res); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "PROJECT\tREQUESTS\tCACHE HITS\tPROMPT TOKENS\tCOMPLETION TOKENS\t")
		for _, p := range res.Projects {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", p.ProjectID, p.Requests, p.CacheHits, p.PromptTokens, p.CompletionTokens)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "(since %s, %s with usage)\n", res.Since, plural(len(res.Projects), "project", "projects"))
		return err
	}
}
