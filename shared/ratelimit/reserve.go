package ratelimit

// ReserveTokens computes Request.ReserveTokens for a model request: the
// estimated prompt tokens plus the client's output cap (max_tokens,
// max_completion_tokens or max_output_tokens), or defaultOutput
// (DEFAULT_RESERVE_TOKENS) when the client sets none. Cache hits and requests
// without a model reserve 0 and do not call this.
func ReserveTokens(promptTokens, maxOutputTokens, defaultOutput int64) int64 {
	out := maxOutputTokens
	if out <= 0 {
		out = defaultOutput
	}
	return max(promptTokens, 0) + max(out, 0)
}
