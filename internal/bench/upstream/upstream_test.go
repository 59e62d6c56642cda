package upstream

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

func TestStatsCountRequestsAndConnections(t *testing.T) {
	s := New(mockopenai.Options{APIKey: "sk-bench", Chunks: 3})
	ts := httptest.NewUnstartedServer(s)
	ts.Config.ConnState = s.ConnState
	ts.Start()
	defer ts.Close()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	for range 5 {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer sk-bench")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		drain(resp)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	resp, err := client.Post(ts.URL+"/_bench/delay?d=5ms", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delay: status %d", resp.StatusCode)
	}
	resp, err = client.Post(ts.URL+"/_bench/delay?d=soon", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	drain(resp)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad delay: status %d", resp.StatusCode)
	}
	resp, err = client.Get(ts.URL + "/_bench/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st Stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Requests != 5 || st.Connections != 1 || st.OpenConnections != 1 {
		t.Errorf("stats %+v; want 5 requests over 1 kept-alive connection", st)
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
