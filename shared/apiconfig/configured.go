package apiconfig

import "github.com/llm-proxy/llm-proxy/shared/config"

// Configured reads the provider DEFAULT_API_PROVIDER selects from
// API_CONFIG_PATH, or the built-in OpenAI default, pointed at
// OPENAI_API_URL when that is set.
func Configured(proxy config.Proxy, upstream config.Upstream) (*Provider, error) {
	api, err := Load(proxy.APIConfigPath, proxy.DefaultAPIProvider)
	if err != nil || proxy.APIConfigPath != "" || upstream.BaseURL == "" {
		return api, err
	}
	return api.WithBaseURL(upstream.BaseURL)
}
