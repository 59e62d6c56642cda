package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// cluster is n proxy processes sharing PostgreSQL and Redis, plus one
// management process (llm-proxy serve on the same database) to create
// projects and tokens.
type cluster struct {
	t       *testing.T
	up      *mockopenai.Server
	proxies []string
	manage  string
	mgmt    string
}

func startCluster(t *testing.T, proxies int) *cluster {
	t.Helper()
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	t.Cleanup(up.Close)
	_, prefix := testenv.Redis(t)
	env := map[string]string{
		"DB_DRIVER":           "postgres",
		"DATABASE_URL":        testenv.PostgresURL(t),
		"REDIS_ADDR":          testenv.RedisAddr(),
		"REDIS_KEY_PREFIX":    prefix,
		"HTTP_CACHE_ENABLED":  "false",
		"ENCRYPTION_KEY":      "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MANAGEMENT_TOKEN":    "limits-management-token-0123456789abcdef",
		"OPENAI_API_URL":      up.URL,
		"LLM_PROXY_EVENT_BUS": "none",
	}
	c := &cluster{t: t, up: up, mgmt: env["MANAGEMENT_TOKEN"]}
	s := startServe(t, t.TempDir(), env) // migrates the schema, serves the management API
	c.manage = s.URL
	for range proxies {
		u, _ := function(t, "proxy", env)
		c.proxies = append(c.proxies, u)
	}
	return c
}

func (c *cluster) project(limits map[string]int64) string {
	c.t.Helper()
	var p struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": fmt.Sprintf("limits-%s", testenv.Suffix()), "api_key": upstreamKey}
	if limits != nil {
		body["limits"] = limits
	}
	if code := api(c.t, "POST", c.manage+"/manage/projects", c.mgmt, body, &p); code != http.StatusCreated {
		c.t.Fatalf("create project: %d", code)
	}
	return p.ID
}

func (c *cluster) token(projectID string, extra map[string]any) string {
	c.t.Helper()
	body := map[string]any{"project_id": projectID, "duration": "1h"}
	for k, v := range extra {
		body[k] = v
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := api(c.t, "POST", c.manage+"/manage/tokens", c.mgmt, body, &tok); code != http.StatusCreated {
		c.t.Fatalf("create token: %d", code)
	}
	return tok.Token
}

// hammer sends n concurrent chat requests, spread round-robin over the proxy
// processes and the tokens, and counts the answers by status.
func (c *cluster) hammer(n int, tokens ...string) map[int]int64 {
	c.t.Helper()
	var mu sync.Mutex
	counts := map[int]int64{}
	var wg sync.WaitGroup
	var failures atomic.Int64
	start := make(chan struct{})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequestWithContext(context.Background(), "POST", c.proxies[i%len(c.proxies)]+"/v1/chat/completions",
				strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				failures.Add(1)
				return
			}
			resp.Body.Close()
			mu.Lock()
			counts[resp.StatusCode]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	if failures.Load() > 0 {
		c.t.Fatalf("%d requests failed at the transport level", failures.Load())
	}
	return counts
}

// TestLimitsHoldAcrossProcesses: limits are exact across proxy processes
// sharing Redis — per token, per project over several tokens, and the
// lifetime max_requests — and only admitted requests reach upstream.
func TestLimitsHoldAcrossProcesses(t *testing.T) {
	c := startCluster(t, 3)

	t.Run("token requests per minute over 3 processes", func(t *testing.T) {
		tok := c.token(c.project(nil), map[string]any{"limits": map[string]int64{"requests_per_minute": 100}})
		before := c.up.Requests()
		counts := c.hammer(300, tok)
		if counts[200] != 100 || counts[429] != 200 {
			t.Fatalf("300 concurrent on a 100/min token: %v, want exactly 100 admitted", counts)
		}
		if got := c.up.Requests() - before; got != 100 {
			t.Fatalf("upstream saw %d requests, want 100", got)
		}
	})

	t.Run("project limit over 5 tokens", func(t *testing.T) {
		p := c.project(map[string]int64{"requests_per_minute": 100})
		var toks []string
		for range 5 {
			toks = append(toks, c.token(p, nil))
		}
		counts := c.hammer(300, toks...)
		if counts[200] != 100 || counts[429] != 200 {
			t.Fatalf("300 concurrent over 5 tokens of a 100/min project: %v, want exactly 100 admitted", counts)
		}
	})

	t.Run("max_requests over 2 processes", func(t *testing.T) {
		two := &cluster{t: t, up: c.up, proxies: c.proxies[:2], manage: c.manage, mgmt: c.mgmt}
		tok := two.token(two.project(nil), map[string]any{"max_requests": 50})
		before := c.up.Requests()
		counts := two.hammer(200, tok)
		if counts[200] != 50 || counts[429] != 150 {
			t.Fatalf("200 concurrent on max_requests 50: %v, want exactly 50 admitted", counts)
		}
		if got := c.up.Requests() - before; got != 50 {
			t.Fatalf("upstream saw %d requests, want exactly 50", got)
		}
	})
}

// streamChat sends a streamed chat request with max_tokens and returns the
// status and the reported total tokens (0 when refused).
func streamChat(t *testing.T, url, token string, maxTokens int) (int, int64) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, maxTokens)
	req, _ := http.NewRequest("POST", url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("stream: %v", err)
		return 0, 0
	}
	defer resp.Body.Close()
	text := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, 0
	}
	var total int64
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, `"total_tokens":`); i >= 0 {
			fmt.Sscanf(line[i+len(`"total_tokens":`):], "%d", &total)
		}
	}
	return resp.StatusCode, total
}

// TestTokenBudgetsAcrossProcesses: a tokens-per-minute budget is never
// overspent by concurrent streams on several processes (reserve, then
// settle), and a stream abandoned by its client gives its reservation back.
func TestTokenBudgetsAcrossProcesses(t *testing.T) {
	c := startCluster(t, 2)

	t.Run("no overspend with concurrent streams", func(t *testing.T) {
		const budget = 2000
		// Paced streams, so that the 40 overlap whatever the machine's load.
		c.up.SetChunkDelay(50 * time.Millisecond)
		defer c.up.SetChunkDelay(0)
		tok := c.token(c.project(nil), map[string]any{"limits": map[string]int64{"tokens_per_minute": budget}})
		var spent atomic.Int64
		var admitted, refused atomic.Int64
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, total := streamChat(t, c.proxies[i%2], tok, 150)
				switch code {
				case http.StatusOK:
					admitted.Add(1)
					spent.Add(total)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("unexpected status %d", code)
				}
			}()
		}
		wg.Wait()
		if refused.Load() == 0 {
			t.Fatalf("40 streams reserving ~160 tokens each never hit a %d budget", budget)
		}
		if spent.Load() > budget {
			t.Fatalf("spent %d tokens of a %d budget (%d admitted)", spent.Load(), budget, admitted.Load())
		}
		t.Logf("%d admitted, %d refused, %d of %d tokens spent", admitted.Load(), refused.Load(), spent.Load(), budget)
	})

	t.Run("disconnect releases the reservation", func(t *testing.T) {
		c.up.SetChunkDelay(200 * time.Millisecond)
		defer c.up.SetChunkDelay(0)
		tok := c.token(c.project(nil), map[string]any{"limits": map[string]int64{"tokens_per_minute": 1000}})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", c.proxies[0]+"/v1/chat/completions", strings.NewReader(
			`{"model":"gpt-4o-mini","stream":true,"max_tokens":900,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("first stream: %v %v", resp, err)
		}
		// While it runs, its ~900-token reservation blocks a second one.
		if code, _ := streamChat(t, c.proxies[1], tok, 900); code != http.StatusTooManyRequests {
			t.Fatalf("second 900-token stream during the first: %d, want 429", code)
		}
		buf := make([]byte, 64)
		_, _ = resp.Body.Read(buf)
		cancel() // the client goes away mid-stream
		resp.Body.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _ := streamChat(t, c.proxies[1], tok, 900)
			if code == http.StatusOK {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("reservation not given back after the client disconnected (last status %d)", code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
