package proxy

// The conformance suite drives the proxy with the official OpenAI Go SDK
// against the mock upstream, with real withering tokens created through a
// real store (SQLite file and PostgreSQL schema), the real keyring, the
// real Validator and the in-memory limiter.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

// realEnv is a store with one active project whose upstream key is the
// mock's.
type realEnv struct {
	store   store.Store
	keyring *secrets.Keyring
	project llmproxy.Project
}

func openStore(t testing.TB, engine string) store.Store {
	t.Helper()
	ctx := context.Background()
	cfg := config.Database{Driver: engine, PoolSize: 4, MaxIdleConns: 2}
	if engine == "postgres" {
		cfg.URL = testenv.PostgresURL(t)
	} else {
		cfg.Path = testenv.SQLitePath(t)
	}
	if err := migrate.Up(ctx, engine, migrate.DSN(cfg)); err != nil {
		t.Fatalf("migrate %s: %v", engine, err)
	}
	st, err := dbopen.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", engine, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newRealEnv(t testing.TB, engine string) *realEnv {
	t.Helper()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	kr, err := secrets.NewKeyring(base64.StdEncoding.EncodeToString(raw), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := &realEnv{store: openStore(t, engine), keyring: kr}
	env.project = env.newProject(t, "conformance")
	return env
}

func (e *realEnv) newProject(t testing.TB, name string) llmproxy.Project {
	t.Helper()
	enc, err := e.keyring.Encrypt(upstreamKey)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.store.CreateProject(context.Background(), llmproxy.Project{
		Name: name, APIKeyEncrypted: enc, APIKeyHint: secrets.MaskAPIKey(upstreamKey), IsActive: true,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type tokenOpts struct {
	project     string
	expiresAt   *time.Time
	maxRequests *int64
}

// newToken creates a token the way the management API does and returns
// its plaintext and id.
func (e *realEnv) newToken(t testing.TB, o tokenOpts) (string, string) {
	t.Helper()
	plain, err := tokens.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if o.project == "" {
		o.project = e.project.ID
	}
	exp := time.Now().Add(time.Hour)
	if o.expiresAt == nil {
		o.expiresAt = &exp
	}
	tok, err := e.store.CreateToken(context.Background(), llmproxy.Token{
		Hash: e.keyring.HashToken(plain), Hint: tokens.Hint(plain), ProjectID: o.project,
		ExpiresAt: o.expiresAt, IsActive: true, MaxRequests: o.maxRequests,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain, tok.ID
}

func sdk(h *harness, token string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(h.srv.URL+"/v1/"), option.WithAPIKey(token), option.WithMaxRetries(0))
	return &c
}

func TestConformance(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			env := newRealEnv(t, engine)
			validator := tokens.NewValidator(env.store, env.keyring, tokens.ValidatorOptions{})
			h := newHarness(t, harnessOpts{
				auth:    validator,
				limiter: ratelimit.NewMemory(ratelimit.MemoryOptions{}),
				mock:    mockopenai.Options{Chunks: 4},
				cfg:     func(c *config.Proxy) { c.MaxRequestSize = 64 << 10 },
			})
			token, tokenID := env.newToken(t, tokenOpts{})
			c := sdk(h, token)
			t.Run("success", func(t *testing.T) { conformSuccess(t, h, c, tokenID) })
			t.Run("errors", func(t *testing.T) { conformErrors(t, h, env, validator) })
		})
	}
}

func conformSuccess(t *testing.T, h *harness, c *openai.Client, tokenID string) {
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello proxy")}

	chat, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs})
	if err != nil || chat.Choices[0].Message.Content != mockopenai.Answer(4) || chat.Usage.TotalTokens != 6 {
		t.Fatalf("chat: %v %+v", err, chat)
	}
	hdr, _, _ := h.mock.LastRequest()
	if hdr.Get("Authorization") != "Bearer "+upstreamKey {
		t.Fatal("upstream did not get the project key")
	}

	n2, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, N: openai.Int(2)})
	if err != nil || len(n2.Choices) != 2 {
		t.Fatalf("n=2: %v", err)
	}

	st := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs})
	acc := openai.ChatCompletionAccumulator{}
	var sawUsage bool
	for st.Next() {
		chunk := st.Current()
		acc.AddChunk(chunk)
		if chunk.JSON.Usage.Valid() {
			sawUsage = true
		}
	}
	if err := st.Err(); err != nil || acc.Choices[0].Message.Content != mockopenai.Answer(4) {
		t.Fatalf("stream: %v %+v", err, acc.Choices)
	}
	if sawUsage {
		t.Fatal("the client saw usage it did not ask for")
	}

	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name: "get_weather", Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{}},
	})}
	st = c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: msgs, Tools: tools,
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	acc = openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	calls := acc.Choices[0].Message.ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != "get_weather" || calls[0].Function.Arguments != `{"p1":1}{"p2":2}{"p3":3}` {
		t.Fatalf("tool calls: %+v", calls)
	}
	if acc.Usage.TotalTokens == 0 {
		t.Fatal("usage asked for but not received")
	}

	comp, err := c.Completions.New(ctx, openai.CompletionNewParams{Model: "gpt-3.5-turbo-instruct",
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("once upon")}})
	if err != nil || comp.Choices[0].Text != mockopenai.Answer(4) {
		t.Fatalf("completions: %v", err)
	}

	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "b"}}})
	if err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 8 {
		t.Fatalf("embeddings: %v", err)
	}

	resp, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi there")}})
	if err != nil || resp.OutputText() != mockopenai.Answer(4) || resp.Usage.InputTokens != 2 {
		t.Fatalf("responses: %v", err)
	}
	follow, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", PreviousResponseID: openai.String(resp.ID),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("more")}})
	if err != nil || follow.PreviousResponseID != resp.ID {
		t.Fatalf("previous_response_id: %v", err)
	}
	got, err := c.Responses.Get(ctx, resp.ID, responses.ResponseGetParams{})
	if err != nil || got.ID != resp.ID {
		t.Fatalf("responses retrieve: %v", err)
	}
	if _, err := c.Responses.InputItems.List(ctx, resp.ID, responses.InputItemListParams{}); err != nil {
		t.Fatalf("input items: %v", err)
	}
	if err := c.Responses.Delete(ctx, resp.ID); err != nil {
		t.Fatalf("responses delete: %v", err)
	}

	rs := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("stream please")}})
	var text strings.Builder
	var completed bool
	for rs.Next() {
		ev := rs.Current()
		switch ev.Type {
		case "response.output_text.delta":
			text.WriteString(ev.Delta)
		case "response.completed":
			completed = ev.Response.Usage.TotalTokens > 0
		}
	}
	if err := rs.Err(); err != nil || text.String() != mockopenai.Answer(4) || !completed {
		t.Fatalf("responses stream: %v %q completed=%v", err, text.String(), completed)
	}

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) == 0 {
		t.Fatalf("models: %v", err)
	}
	m, err := c.Models.Get(ctx, "gpt-4o")
	if err != nil || m.ID != "gpt-4o" {
		t.Fatalf("model: %v", err)
	}

	mod, err := c.Moderations.New(ctx, openai.ModerationNewParams{Input: openai.ModerationNewParamsInputUnion{OfString: openai.String("I will kill it")}})
	if err != nil || !mod.Results[0].Flagged {
		t.Fatalf("moderations: %v", err)
	}

	tr, err := c.Audio.Transcriptions.New(ctx, openai.AudioTranscriptionNewParams{
		Model: openai.AudioModelWhisper1, File: openai.File(bytes.NewReader([]byte("ID3 fake audio bytes")), "speech.mp3", "audio/mpeg"),
	})
	if err != nil || !strings.Contains(tr.Text, "speech.mp3 (20 bytes)") {
		t.Fatalf("transcription: %v %+v", err, tr)
	}

	img, err := c.Images.Generate(ctx, openai.ImageGenerateParams{Prompt: "a cat", Model: openai.ImageModelGPTImage1})
	if err != nil || len(img.Data) != 1 || img.Data[0].B64JSON == "" {
		t.Fatalf("images: %v", err)
	}

	// Every request above was counted for the token (off the request path).
	if n := h.usage.count(tokenID); n < 15 {
		t.Fatalf("usage recorded %d requests", n)
	}
}

// apiErr asserts err is an SDK *openai.Error with status and code.
func apiErr(t *testing.T, what string, err error, status int, code string) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: want API error %d, got %v", what, status, err)
	}
	if e.StatusCode != status || e.Code != code || e.Message == "" {
		t.Fatalf("%s: got %d %q %q, want %d %q", what, e.StatusCode, e.Code, e.Message, status, code)
	}
	return e
}

func conformErrors(t *testing.T, h *harness, env *realEnv, validator *tokens.Validator) {
	ctx := context.Background()
	store := env.store

	_, err := sdk(h, "sk-not-a-withering-token").Models.List(ctx)
	apiErr(t, "malformed", err, 401, llmproxy.CodeInvalidToken)
	unknown, err := tokens.Generate()
	if err != nil {
		t.Fatal(err)
	}
	_, err = sdk(h, unknown).Models.List(ctx)
	apiErr(t, "unknown", err, 401, llmproxy.CodeTokenNotFound)

	revoked, revokedID := env.newToken(t, tokenOpts{})
	if _, err := sdk(h, revoked).Models.List(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.RevokeToken(ctx, revokedID, nil); err != nil {
		t.Fatal(err)
	}
	validator.InvalidateToken(revokedID) // what the management API's bus does
	_, err = sdk(h, revoked).Models.List(ctx)
	apiErr(t, "revoked", err, 401, llmproxy.CodeTokenRevoked)

	past := time.Now().Add(-time.Minute)
	expired, _ := env.newToken(t, tokenOpts{expiresAt: &past})
	_, err = sdk(h, expired).Models.List(ctx)
	apiErr(t, "expired", err, 401, llmproxy.CodeTokenExpired)

	other := env.newProject(t, "inactive")
	inactive, _ := env.newToken(t, tokenOpts{project: other.ID})
	off := false
	if _, _, err := store.UpdateProject(ctx, other.ID, storeProjectOff(&off), nil); err != nil {
		t.Fatal(err)
	}
	_, err = sdk(h, inactive).Models.List(ctx)
	apiErr(t, "inactive project", err, 403, llmproxy.CodeProjectInactive)

	one := int64(1)
	quota, _ := env.newToken(t, tokenOpts{maxRequests: &one})
	if _, err := sdk(h, quota).Models.List(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = sdk(h, quota).Models.List(ctx)
	e := apiErr(t, "quota", err, 429, llmproxy.CodeQuotaExceeded)
	if e.Response.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}

	good, _ := env.newToken(t, tokenOpts{})
	c := sdk(h, good)
	_, err = c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small",
		Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(strings.Repeat("x", 70<<10))}})
	apiErr(t, "too large", err, 413, llmproxy.CodeTooLarge)

	_, err = c.FineTuning.Jobs.List(ctx, openai.FineTuningJobListParams{})
	apiErr(t, "endpoint", err, 404, codeEndpointNotFound)

	err = c.Put(ctx, "models/gpt-4o", nil, nil)
	apiErr(t, "method", err, 405, llmproxy.CodeMethodNotAllowed)

	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "mock-error-429",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	var up *openai.Error
	if !errors.As(err, &up) || up.StatusCode != 429 || up.Response.Header.Get("Retry-After") != "7" {
		t.Fatalf("upstream 429: %v", err)
	}

	// The store goes away: a token not yet cached cannot be checked → 503,
	// never 401.
	fresh, _ := env.newToken(t, tokenOpts{})
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = sdk(h, fresh).Models.List(ctx)
	apiErr(t, "store down", err, 503, llmproxy.CodeUnavailable)
}

func storeProjectOff(off *bool) store.ProjectUpdate { return store.ProjectUpdate{IsActive: off} }

// TestLongStreamOutlivesServerDeadlines: a completion that streams for many
// times every deadline of the server it runs on is never cut. The server's
// read, write, read-header and idle timeouts, the upstream's response-header
// timeout and the API's request timeout are all one short deadline; the
// upstream pauses 2.5 deadlines before every event, so each pause crosses
// them all, and keep-alive comments fill the pauses. Without the proxy
// clearing the connection's deadlines, the first pause ends the stream.
func TestLongStreamOutlivesServerDeadlines(t *testing.T) {
	t.Parallel()
	const (
		deadline = 300 * time.Millisecond
		gap      = deadline * 5 / 2
		chunks   = 4 // + role, finish and usage events: 7 pauses, 17 deadlines
	)
	h := newHarness(t, harnessOpts{
		mock:     mockopenai.Options{Chunks: chunks, ChunkDelay: gap},
		deadline: deadline,
		cfg: func(c *config.Proxy) {
			c.StreamKeepAlive = deadline / 2
			c.UpstreamResponseHeaderTimeout = deadline
		},
		api: "apis:\n  openai:\n    base_url: https://replaced\n    allowed_endpoints: [/v1/chat/completions]\n" +
			"    allowed_methods: [POST]\n    timeouts:\n      request: " + deadline.String() + "\n",
	})
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(
		`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+goodToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var events, keepAlives, crossed int
	last, done := start, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		switch line := sc.Text(); {
		case line == ": keep-alive":
			keepAlives++
		case strings.HasPrefix(line, "data: "):
			events++
			now := time.Now()
			if now.Sub(last) > deadline {
				crossed++
			}
			last = now
			done = line == "data: [DONE]"
		}
	}
	if err := sc.Err(); err != nil || !done {
		t.Fatalf("stream cut after %d events and %d keep-alives, %v in: %v", events, keepAlives, time.Since(start), err)
	}
	if events != chunks+3 { // role, content, finish, [DONE]; usage stripped
		t.Fatalf("%d events, want %d", events, chunks+3)
	}
	if lasted := time.Since(start); lasted < 12*deadline {
		t.Fatalf("stream lasted %v, want at least 12 deadlines of %v", lasted, deadline)
	}
	// Each pause crossed the deadlines, and the client saw the proxy keep it
	// alive; a loaded machine may bunch a few events.
	if crossed < chunks {
		t.Fatalf("only %d of %d events came more than a deadline after the one before", crossed, events)
	}
	if keepAlives < chunks+3 {
		t.Fatalf("%d keep-alive comments in %d pauses of %v, want one per pause at least", keepAlives, chunks+3, gap)
	}
}
