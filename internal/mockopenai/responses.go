package mockopenai

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// response implements POST /v1/responses (plain and streaming). Responses
// are stored so retrieve, delete and input_items work, and
// previous_response_id must name a stored response.
func (s *Server) response(w http.ResponseWriter, r *http.Request, req map[string]any) {
	model, _ := req["model"].(string)
	if prev, ok := req["previous_response_id"].(string); ok && prev != "" {
		s.mu.Lock()
		_, found := s.responses[prev]
		s.mu.Unlock()
		if !found {
			writeError(w, 400, "Previous response with id '"+prev+"' not found.", "invalid_request_error", "previous_response_not_found")
			return
		}
	}
	id := s.nextID("resp_mock")
	msgID := s.nextID("msg_mock")
	chunks := s.opts.Chunks
	prompt := words(req["input"]) + words(req["instructions"])
	created := time.Now().Unix()
	obj := func(status string, text string, withUsage bool) map[string]any {
		o := map[string]any{"id": id, "object": "response", "created_at": created, "status": status, "model": model,
			"output": []any{}, "parallel_tool_calls": true, "tool_choice": "auto", "tools": []any{},
			"previous_response_id": req["previous_response_id"], "instructions": req["instructions"], "error": nil,
			"incomplete_details": nil, "metadata": map[string]any{}, "temperature": 1.0, "top_p": 1.0, "text": map[string]any{"format": map[string]any{"type": "text"}}}
		if status == "completed" {
			o["output"] = []any{outputMessage(msgID, text)}
		}
		if withUsage && !s.usageOmitted(model) {
			o["usage"] = map[string]any{"input_tokens": prompt, "output_tokens": chunks, "total_tokens": prompt + int64(chunks),
				"input_tokens_details": map[string]any{"cached_tokens": 0}, "output_tokens_details": map[string]any{"reasoning_tokens": 0}}
		}
		return o
	}
	full := Answer(chunks)
	done := obj("completed", full, true)
	stored, _ := json.Marshal(done)
	s.mu.Lock()
	s.responses[id] = stored
	s.mu.Unlock()
	if stream, _ := req["stream"].(bool); !stream {
		writeJSON(w, 200, done)
		return
	}
	seq := 0
	ev := func(typ string, fields map[string]any) map[string]any {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		return fields
	}
	events := []any{
		ev("response.created", map[string]any{"response": obj("in_progress", "", false)}),
		ev("response.in_progress", map[string]any{"response": obj("in_progress", "", false)}),
		ev("response.output_item.added", map[string]any{"output_index": 0,
			"item": map[string]any{"id": msgID, "type": "message", "status": "in_progress", "role": "assistant", "content": []any{}}}),
		ev("response.content_part.added", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}}),
	}
	for i := range chunks {
		events = append(events, ev("response.output_text.delta", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "delta": ChunkText(i), "logprobs": []any{}}))
	}
	events = append(events,
		ev("response.output_text.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0, "text": full, "logprobs": []any{}}),
		ev("response.content_part.done", map[string]any{"item_id": msgID, "output_index": 0, "content_index": 0,
			"part": map[string]any{"type": "output_text", "text": full, "annotations": []any{}}}),
		ev("response.output_item.done", map[string]any{"output_index": 0, "item": outputMessage(msgID, full)}),
		ev("response.completed", map[string]any{"response": done}),
	)
	s.stream(w, r, model, events, "", false)
}

func outputMessage(id, text string) map[string]any {
	return map[string]any{"id": id, "type": "message", "status": "completed", "role": "assistant",
		"content": []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}}
}

// responseByID implements GET/DELETE /v1/responses/{id} and GET
// /v1/responses/{id}/input_items.
func (s *Server) responseByID(w http.ResponseWriter, r *http.Request, rest string) {
	id, sub, _ := strings.Cut(rest, "/")
	s.mu.Lock()
	stored, ok := s.responses[id]
	if ok && r.Method == http.MethodDelete && sub == "" {
		delete(s.responses, id)
	}
	s.mu.Unlock()
	switch {
	case !ok:
		writeError(w, 404, "Response with id '"+id+"' not found.", "invalid_request_error", "")
	case r.Method == http.MethodDelete && sub == "":
		writeJSON(w, 200, map[string]any{"id": id, "object": "response.deleted", "deleted": true})
	case r.Method == http.MethodGet && sub == "input_items":
		writeJSON(w, 200, map[string]any{"object": "list", "data": []any{}, "first_id": nil, "last_id": nil, "has_more": false})
	case r.Method == http.MethodGet && sub == "":
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(stored)
	default:
		writeError(w, 405, "method not allowed", "invalid_request_error", "")
	}
}
