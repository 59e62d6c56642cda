package testenv

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter is the sum of the counter series called name in g whose labels
// include every labels pair (name, value, name, value, …). It fails the test
// when no series of that name matches.
func Counter(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	found := false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
			found = true
		}
	}
	if !found {
		t.Fatalf("no counter %s%v registered", name, labels)
	}
	return sum
}
