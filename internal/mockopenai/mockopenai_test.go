package mockopenai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

func client(s *Server, key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

func TestKeyCheck(t *testing.T) {
	s := Start(Options{APIKey: "sk-upstream"})
	defer s.Close()
	_, err := client(s, "wrong").Models.List(context.Background())
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Fatalf("err = %v", err)
	}
	if s.Requests() != 0 {
		t.Fatal("unauthenticated request counted")
	}
	if _, err := client(s, "sk-upstream").Models.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.Requests() != 1 || s.RequestsFor("/v1/models") != 1 {
		t.Fatalf("counters = %d %d", s.Requests(), s.RequestsFor("/v1/models"))
	}
}

func TestChatStreamIncludeUsage(t *testing.T) {
	s := Start(Options{Chunks: 3})
	defer s.Close()
	for _, include := range []bool{false, true} {
		params := openai.ChatCompletionNewParams{
			Model:    "gpt-4o",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("say three words")},
		}
		if include {
			params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		}
		st := client(s, "k").Chat.Completions.NewStreaming(context.Background(), params)
		var text strings.Builder
		var usage int64
		for st.Next() {
			c := st.Current()
			if len(c.Choices) > 0 {
				text.WriteString(c.Choices[0].Delta.Content)
			}
			usage += c.Usage.TotalTokens
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		if text.String() != Answer(3) {
			t.Fatalf("text = %q", text.String())
		}
		if (usage > 0) != include {
			t.Fatalf("include_usage=%v but usage total %d", include, usage)
		}
	}
}

func TestInjectedFailures(t *testing.T) {
	s := Start(Options{})
	defer s.Close()
	s.Fail(&Failure{Status: 503, Count: 1, Headers: http.Header{"Retry-After": {"3"}}})
	resp, err := http.Post(s.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("status %d retry %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, err = http.Post(s.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"gpt-4o","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
		t.Fatalf("failure not cleared: %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(s.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"mock-abort-2","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err == nil {
		t.Fatal("aborted stream read without error")
	}
}
