package managetokens_test

import (
	"testing"

	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/shared/management/mgmthttp/mgmthttptest"
)

// TestPathsAreRoutedHere ties the deployment's routing to the function:
// knative/httproute.yaml sends exactly Paths() here (mgmthttp.Serve ties
// Paths() to the routing table; composition code mounts Paths()).
func TestPathsAreRoutedHere(t *testing.T) {
	mgmthttptest.CheckRouted(t, "llm-proxy-manage-tokens", managetokens.Paths())
}
