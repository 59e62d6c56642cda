// Package mockopenai is a faithful stand-in for the OpenAI API, for tests and
// the benchmark tool: chat completions (JSON and SSE, stream_options
// .include_usage, tool calls, n>1), completions, embeddings, the Responses
// API (plain, streaming, retrieve, delete, input items), models, moderations,
// audio (transcriptions, speech), images, files and batches.
//
// It checks `Authorization: Bearer <APIKey>` and answers 401 in OpenAI's
// shape otherwise, counts requests (total and per path), records the last
// request's headers and body, paces streams, injects failures, and notices
// when a client cancels a stream.
//
// Failures can also be asked for through the model name, which passes
// through any proxy: "mock-error-<status>" answers that status,
// "mock-abort-<n>" breaks the stream after n chunks, "mock-no-usage" never
// reports usage.
package mockopenai

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Server.
type Options struct {
	// APIKey is the bearer key the server requires ("" accepts any).
	APIKey string
	// Chunks is the number of content chunks of a streamed answer (default 5).
	Chunks int
	// ChunkDelay is the pause before every streamed chunk.
	ChunkDelay time.Duration
	// OmitUsage makes every answer leave out usage (an upstream that omits it).
	OmitUsage bool
}

// Failure is an injected error answer.
type Failure struct {
	Status  int
	Headers http.Header
	Message string
	// Count is how many requests fail (0 = every request until cleared).
	Count int
}

// Server is the mock. It is an http.Handler; Start also serves it on a
// loopback listener.
type Server struct {
	opts Options
	URL  string // set by Start
	ts   *httptest.Server

	total    atomic.Int64
	canceled atomic.Int64
	// CanceledCh receives the path of every streamed request whose client
	// went away before the stream ended (buffered; never blocks the server).
	CanceledCh chan string

	mu          sync.Mutex
	perPath     map[string]int64
	lastHeader  http.Header
	lastBody    []byte
	lastPath    string
	failure     *Failure
	abortAfter  int // chunks before a mid-stream failure (-1 = none)
	responses   map[string]json.RawMessage
	files       map[string]fileObj
	chunkDelay  time.Duration
	seq         int64
	streamStart chan struct{}
}

type fileObj struct {
	meta    map[string]any
	content []byte
}

// New returns a Server that is not listening (use it as a handler).
func New(opts Options) *Server {
	if opts.Chunks <= 0 {
		opts.Chunks = 5
	}
	return &Server{
		opts: opts, perPath: map[string]int64{}, abortAfter: -1,
		responses: map[string]json.RawMessage{}, files: map[string]fileObj{},
		chunkDelay: opts.ChunkDelay, CanceledCh: make(chan string, 64),
		streamStart: make(chan struct{}, 64),
	}
}

// Start returns a Server listening on 127.0.0.1; Close stops it.
func Start(opts Options) *Server {
	s := New(opts)
	s.ts = httptest.NewServer(s)
	s.URL = s.ts.URL
	return s
}

// Close stops a started server.
func (s *Server) Close() {
	if s.ts != nil {
		s.ts.CloseClientConnections()
		s.ts.Close()
	}
}

// Requests returns the number of requests that passed authentication.
func (s *Server) Requests() int64 { return s.total.Load() }

// RequestsFor returns the number of authenticated requests for path.
func (s *Server) RequestsFor(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perPath[path]
}

// Canceled returns how many streams were cut by their client.
func (s *Server) Canceled() int64 { return s.canceled.Load() }

// StreamStarted receives a value whenever a stream has sent its headers.
func (s *Server) StreamStarted() <-chan struct{} { return s.streamStart }

// LastRequest returns a copy of the last request's headers, body and path.
func (s *Server) LastRequest() (http.Header, []byte, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHeader.Clone(), bytes.Clone(s.lastBody), s.lastPath
}

// Fail makes the next requests fail with f (Count requests, or all until
// Fail(nil)).
func (s *Server) Fail(f *Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f != nil {
		c := *f
		f = &c
	}
	s.failure = f
}

// AbortStreamsAfter breaks every stream after n chunks (n < 0: never).
func (s *Server) AbortStreamsAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.abortAfter = n
}

// SetChunkDelay changes the pause between streamed chunks.
func (s *Server) SetChunkDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chunkDelay = d
}

// ServeHTTP routes a request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opts.APIKey != "" {
		scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || key != s.opts.APIKey {
			writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read body", "invalid_request_error", "")
		return
	}
	s.total.Add(1)
	s.mu.Lock()
	s.perPath[r.URL.Path]++
	s.lastHeader = r.Header.Clone()
	s.lastBody = body
	s.lastPath = r.URL.Path
	fail := s.failure
	if fail != nil && fail.Count > 0 {
		fail.Count--
		if fail.Count == 0 {
			s.failure = nil
		}
	}
	s.mu.Unlock()
	if fail != nil {
		for k, vs := range fail.Headers {
			w.Header()[k] = vs
		}
		msg := fail.Message
		if msg == "" {
			msg = http.StatusText(fail.Status)
		}
		writeError(w, fail.Status, msg, errType(fail.Status), "")
		return
	}
	var req map[string]any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") && len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "We could not parse the JSON body of your request.", "invalid_request_error", "")
			return
		}
	}
	model, _ := req["model"].(string)
	if st, ok := strings.CutPrefix(model, "mock-error-"); ok {
		code, _ := strconv.Atoi(st)
		if code < 400 || code > 599 {
			code = 500
		}
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "7")
			w.Header().Set("x-ratelimit-remaining-requests", "0")
		}
		writeError(w, code, "mock error "+st, errType(code), "")
		return
	}
	p := r.URL.Path
	switch {
	case r.Method == http.MethodPost && p == "/v1/chat/completions":
		s.chat(w, r, req)
	case r.Method == http.MethodPost && p == "/v1/completions":
		s.completion(w, r, req)
	case r.Method == http.MethodPost && p == "/v1/embeddings":
		s.embeddings(w, req)
	case r.Method == http.MethodPost && p == "/v1/responses":
		s.response(w, r, req)
	case strings.HasPrefix(p, "/v1/responses/"):
		s.responseByID(w, r, strings.TrimPrefix(p, "/v1/responses/"))
	case r.Method == http.MethodGet && p == "/v1/models":
		writeJSON(w, 200, map[string]any{"object": "list", "data": []any{model_("gpt-4o"), model_("gpt-4o-mini"), model_("text-embedding-3-small")}})
	case r.Method == http.MethodGet && strings.HasPrefix(p, "/v1/models/"):
		writeJSON(w, 200, model_(strings.TrimPrefix(p, "/v1/models/")))
	case r.Method == http.MethodPost && p == "/v1/moderations":
		s.moderations(w, req)
	case r.Method == http.MethodPost && (p == "/v1/audio/transcriptions" || p == "/v1/audio/translations"):
		s.transcription(w, r, body)
	case r.Method == http.MethodPost && p == "/v1/audio/speech":
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(append([]byte("ID3"), bytes.Repeat([]byte{0xff, 0xfb}, 512)...))
	case r.Method == http.MethodPost && p == "/v1/images/generations":
		s.images(w, req)
	case strings.HasPrefix(p, "/v1/files"):
		s.filesAPI(w, r, body)
	case strings.HasPrefix(p, "/v1/batches"):
		s.batches(w, r, req)
	default:
		writeError(w, http.StatusNotFound, "Invalid URL ("+r.Method+" "+p+")", "invalid_request_error", "")
	}
}

func errType(status int) string {
	switch {
	case status == 401:
		return "invalid_request_error"
	case status == 429:
		return "rate_limit_exceeded"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

func writeError(w http.ResponseWriter, status int, msg, typ, code string) {
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": c}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-request-id", "req_mock")
	w.Header().Set("openai-processing-ms", "1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func model_(id string) map[string]any {
	return map[string]any{"id": id, "object": "model", "created": 1700000000, "owned_by": "openai"}
}

func (s *Server) nextID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("%s%06d", prefix, s.seq)
}

// words counts whitespace-separated words of every string in v: the mock's
// deterministic "token" count.
func words(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(strings.Fields(x)))
	case []any:
		var n int64
		for _, e := range x {
			n += words(e)
		}
		return n
	case map[string]any:
		var n int64
		for k, e := range x {
			if k == "content" || k == "text" || k == "input" {
				n += words(e)
			}
		}
		return n
	}
	return 0
}

func intOf(v any, def int) int {
	if f, ok := v.(float64); ok && f > 0 {
		return int(f)
	}
	return def
}

// ChunkText is the content of streamed chunk i; a full answer is the
// concatenation of ChunkText(0..Chunks-1).
func ChunkText(i int) string { return fmt.Sprintf("tok%d ", i) }

// Answer is the full text of a non-streamed answer with n chunks.
func Answer(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(ChunkText(i))
	}
	return b.String()
}

func (s *Server) usageOmitted(model string) bool {
	return s.opts.OmitUsage || model == "mock-no-usage"
}

func usageObj(prompt, completion int64) map[string]any {
	return map[string]any{
		"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
		"prompt_tokens_details":     map[string]any{"cached_tokens": 0, "audio_tokens": 0},
		"completion_tokens_details": map[string]any{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

// toolName returns the first function tool's name when the request has
// tools and does not refuse them.
func toolName(req map[string]any) string {
	tools, _ := req["tools"].([]any)
	if len(tools) == 0 || req["tool_choice"] == "none" {
		return ""
	}
	t, _ := tools[0].(map[string]any)
	f, _ := t["function"].(map[string]any)
	name, _ := f["name"].(string)
	return name
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, req map[string]any) {
	model, _ := req["model"].(string)
	n := intOf(req["n"], 1)
	chunks := s.opts.Chunks
	prompt := words(req["messages"])
	completion := int64(chunks * n)
	tool := toolName(req)
	id := s.nextID("chatcmpl-mock")
	created := time.Now().Unix()
	if stream, _ := req["stream"].(bool); stream {
		includeUsage := false
		if so, ok := req["stream_options"].(map[string]any); ok {
			includeUsage, _ = so["include_usage"].(bool)
		}
		base := func(choices []any) map[string]any {
			m := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
				"system_fingerprint": "fp_mock", "choices": choices}
			if includeUsage {
				m["usage"] = nil
			}
			return m
		}
		var events []any
		for c := range n {
			events = append(events, base([]any{map[string]any{"index": c, "delta": map[string]any{"role": "assistant", "content": ""}, "logprobs": nil, "finish_reason": nil}}))
		}
		for i := range chunks {
			for c := range n {
				var delta map[string]any
				if tool != "" {
					tc := map[string]any{"index": 0, "function": map[string]any{"arguments": fmt.Sprintf(`{"p%d":%d}`, i, i)}}
					if i == 0 {
						tc["id"] = "call_mock" + strconv.Itoa(c)
						tc["type"] = "function"
						tc["function"] = map[string]any{"name": tool, "arguments": ""}
					}
					delta = map[string]any{"tool_calls": []any{tc}}
				} else {
					delta = map[string]any{"content": ChunkText(i)}
				}
				events = append(events, base([]any{map[string]any{"index": c, "delta": delta, "logprobs": nil, "finish_reason": nil}}))
			}
		}
		finish := "stop"
		if tool != "" {
			finish = "tool_calls"
		}
		for c := range n {
			events = append(events, base([]any{map[string]any{"index": c, "delta": map[string]any{}, "logprobs": nil, "finish_reason": finish}}))
		}
		if includeUsage && !s.usageOmitted(model) {
			u := base([]any{})
			u["usage"] = usageObj(prompt, completion)
			events = append(events, u)
		}
		s.stream(w, r, model, events, "", true)
		return
	}
	var choices []any
	for c := range n {
		msg := map[string]any{"role": "assistant", "content": Answer(chunks), "refusal": nil, "annotations": []any{}}
		finish := "stop"
		if tool != "" {
			msg["content"] = nil
			msg["tool_calls"] = []any{map[string]any{"id": "call_mock" + strconv.Itoa(c), "type": "function",
				"function": map[string]any{"name": tool, "arguments": `{"p":0}`}}}
			finish = "tool_calls"
		}
		choices = append(choices, map[string]any{"index": c, "message": msg, "logprobs": nil, "finish_reason": finish})
	}
	resp := map[string]any{"id": id, "object": "chat.completion", "created": created, "model": model,
		"system_fingerprint": "fp_mock", "choices": choices, "service_tier": "default"}
	if !s.usageOmitted(model) {
		resp["usage"] = usageObj(prompt, completion)
	}
	writeJSON(w, 200, resp)
}

func (s *Server) completion(w http.ResponseWriter, r *http.Request, req map[string]any) {
	model, _ := req["model"].(string)
	chunks := s.opts.Chunks
	prompt := words(req["prompt"])
	id := s.nextID("cmpl-mock")
	created := time.Now().Unix()
	if stream, _ := req["stream"].(bool); stream {
		includeUsage := false
		if so, ok := req["stream_options"].(map[string]any); ok {
			includeUsage, _ = so["include_usage"].(bool)
		}
		var events []any
		for i := range chunks {
			var finish any
			if i == chunks-1 {
				finish = "stop"
			}
			events = append(events, map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{map[string]any{"index": 0, "text": ChunkText(i), "logprobs": nil, "finish_reason": finish}}})
		}
		if includeUsage && !s.usageOmitted(model) {
			events = append(events, map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
				"choices": []any{}, "usage": usageObj(prompt, int64(chunks))})
		}
		s.stream(w, r, model, events, "", true)
		return
	}
	resp := map[string]any{"id": id, "object": "text_completion", "created": created, "model": model,
		"choices": []any{map[string]any{"index": 0, "text": Answer(chunks), "logprobs": nil, "finish_reason": "stop"}}}
	if !s.usageOmitted(model) {
		u := usageObj(prompt, int64(chunks))
		delete(u, "prompt_tokens_details")
		delete(u, "completion_tokens_details")
		resp["usage"] = u
	}
	writeJSON(w, 200, resp)
}

func (s *Server) embeddings(w http.ResponseWriter, req map[string]any) {
	model, _ := req["model"].(string)
	dims := intOf(req["dimensions"], 8)
	inputs, ok := req["input"].([]any)
	if !ok {
		inputs = []any{req["input"]}
	}
	if len(inputs) > 0 {
		if _, isNum := inputs[0].(float64); isNum { // one list of token ids
			inputs = []any{inputs}
		}
	}
	var data []any
	for i := range inputs {
		vec := make([]float32, dims)
		for d := range vec {
			vec[d] = float32(math.Sin(float64(i*dims + d + 1)))
		}
		var emb any = vec
		if req["encoding_format"] == "base64" {
			buf := make([]byte, 4*dims)
			for d, f := range vec {
				binary.LittleEndian.PutUint32(buf[4*d:], math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf)
		}
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": emb})
	}
	prompt := words(req["input"])
	resp := map[string]any{"object": "list", "data": data, "model": model}
	if !s.usageOmitted(model) {
		resp["usage"] = map[string]any{"prompt_tokens": prompt, "total_tokens": prompt}
	}
	writeJSON(w, 200, resp)
}

func (s *Server) moderations(w http.ResponseWriter, req map[string]any) {
	inputs, ok := req["input"].([]any)
	if !ok {
		inputs = []any{req["input"]}
	}
	cats := []string{"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
		"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic"}
	var results []any
	for _, in := range inputs {
		text, _ := in.(string)
		flagged := strings.Contains(strings.ToLower(text), "kill")
		c, sc, ap := map[string]any{}, map[string]any{}, map[string]any{}
		for _, k := range cats {
			c[k] = flagged && k == "violence"
			score := 0.0001
			if flagged && k == "violence" {
				score = 0.97
			}
			sc[k] = score
			ap[k] = []string{"text"}
		}
		results = append(results, map[string]any{"flagged": flagged, "categories": c, "category_scores": sc, "category_applied_input_types": ap})
	}
	model, _ := req["model"].(string)
	if model == "" {
		model = "omni-moderation-latest"
	}
	writeJSON(w, 200, map[string]any{"id": s.nextID("modr-mock"), "model": model, "results": results})
}

func (s *Server) transcription(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		writeError(w, 400, "expected multipart/form-data: "+err.Error(), "invalid_request_error", "")
		return
	}
	f, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, 400, "missing file", "invalid_request_error", "")
		return
	}
	defer f.Close()
	n, _ := io.Copy(io.Discard, f)
	if r.FormValue("model") == "" {
		writeError(w, 400, "you must provide a model parameter", "invalid_request_error", "")
		return
	}
	text := fmt.Sprintf("transcribed %s (%d bytes)", hdr.Filename, n)
	if r.FormValue("response_format") == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, text)
		return
	}
	writeJSON(w, 200, map[string]any{"text": text, "usage": map[string]any{"type": "duration", "seconds": 1}})
}

func (s *Server) images(w http.ResponseWriter, req map[string]any) {
	n := intOf(req["n"], 1)
	var data []any
	for range n {
		data = append(data, map[string]any{"b64_json": base64.StdEncoding.EncodeToString([]byte("\x89PNG mock")), "revised_prompt": req["prompt"]})
	}
	writeJSON(w, 200, map[string]any{"created": time.Now().Unix(), "data": data})
}

func (s *Server) filesAPI(w http.ResponseWriter, r *http.Request, body []byte) {
	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/files"), "/")
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case r.Method == http.MethodPost && id == "":
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			writeError(w, 400, "expected multipart/form-data", "invalid_request_error", "")
			return
		}
		f, hdr, err := r.FormFile("file")
		if err != nil {
			writeError(w, 400, "missing file", "invalid_request_error", "")
			return
		}
		content, _ := io.ReadAll(f)
		_ = f.Close()
		fid := s.nextID("file-mock")
		meta := map[string]any{"id": fid, "object": "file", "bytes": len(content), "created_at": time.Now().Unix(),
			"filename": hdr.Filename, "purpose": r.FormValue("purpose"), "status": "processed"}
		s.mu.Lock()
		s.files[fid] = fileObj{meta: meta, content: content}
		s.mu.Unlock()
		writeJSON(w, 200, meta)
	case r.Method == http.MethodGet && id == "":
		s.mu.Lock()
		var data []any
		for _, f := range s.files {
			data = append(data, f.meta)
		}
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"object": "list", "data": data, "has_more": false})
	default:
		s.mu.Lock()
		f, ok := s.files[id]
		if ok && r.Method == http.MethodDelete {
			delete(s.files, id)
		}
		s.mu.Unlock()
		switch {
		case !ok:
			writeError(w, 404, "No such File object: "+id, "invalid_request_error", "")
		case r.Method == http.MethodDelete:
			writeJSON(w, 200, map[string]any{"id": id, "object": "file", "deleted": true})
		case sub == "content":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(f.content)
		default:
			writeJSON(w, 200, f.meta)
		}
	}
}

func (s *Server) batches(w http.ResponseWriter, r *http.Request, req map[string]any) {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/v1/batches"), "/")
	batch := func(id string) map[string]any {
		return map[string]any{"id": id, "object": "batch", "endpoint": req["endpoint"], "input_file_id": req["input_file_id"],
			"completion_window": "24h", "status": "validating", "created_at": time.Now().Unix()}
	}
	switch {
	case r.Method == http.MethodPost && id == "":
		writeJSON(w, 200, batch(s.nextID("batch_mock")))
	case r.Method == http.MethodGet && id == "":
		writeJSON(w, 200, map[string]any{"object": "list", "data": []any{}, "has_more": false})
	default:
		writeJSON(w, 200, batch(strings.TrimSuffix(id, "/cancel")))
	}
}

// stream writes events as SSE, one flush per event, pacing them by the
// chunk delay, with the final "data: [DONE]" when done is true. named
// events (the Responses API) carry an "event:" line with their type.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, model string, events []any, _ string, done bool) {
	s.mu.Lock()
	delay := s.chunkDelay
	abort := s.abortAfter
	s.mu.Unlock()
	if n, ok := strings.CutPrefix(model, "mock-abort-"); ok {
		abort, _ = strconv.Atoi(n)
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("x-request-id", "req_mock")
	w.WriteHeader(200)
	_ = rc.Flush()
	select {
	case s.streamStart <- struct{}{}:
	default:
	}
	var t *time.Timer
	for i, ev := range events {
		if abort >= 0 && i >= abort {
			panic(http.ErrAbortHandler) // cut the connection mid-stream
		}
		if delay > 0 {
			if t == nil {
				t = time.NewTimer(delay)
			} else {
				t.Reset(delay)
			}
			select {
			case <-r.Context().Done():
				s.noteCancel(r)
				return
			case <-t.C:
			}
		}
		data, _ := json.Marshal(ev)
		var err error
		if typ, ok := ev.(map[string]any)["type"].(string); ok && strings.HasPrefix(typ, "response.") {
			_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, data)
		} else {
			_, err = fmt.Fprintf(w, "data: %s\n\n", data)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil || r.Context().Err() != nil {
			s.noteCancel(r)
			return
		}
	}
	if done {
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
		_ = rc.Flush()
	}
}

func (s *Server) noteCancel(r *http.Request) {
	s.canceled.Add(1)
	select {
	case s.CanceledCh <- r.URL.Path:
	default:
	}
}
