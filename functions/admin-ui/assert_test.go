package adminui

import "github.com/llm-proxy/llm-proxy/shared/management"

var _ Service = (*management.Service)(nil)
