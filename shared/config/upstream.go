package config

import "net/url"

// Upstream overrides the upstream without a provider file.
type Upstream struct {
	BaseURL string `env:"OPENAI_API_URL" desc:"Base URL of the upstream when API_CONFIG_PATH is unset (default https://api.openai.com): any OpenAI-compatible server, e.g. http://vllm:8000 or an Azure OpenAI resource URL. A path is kept; a trailing /v1, as SDKs write base URLs, may be given or left out."`
}

func (u Upstream) validate() error {
	if u.BaseURL == "" {
		return nil
	}
	p, err := url.Parse(u.BaseURL)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return invalid("OPENAI_API_URL", "must be an absolute http or https URL", u.BaseURL)
	}
	return nil
}
