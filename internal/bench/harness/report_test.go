package harness

import (
	"strings"
	"testing"
	"time"
)

func TestMedianOfAndChecks(t *testing.T) {
	runs := []Measurement{
		{Scenario: ScChat, Target: Bare, Round: 1, Throughput: 100, CPUPerReq: 50},
		{Scenario: ScChat, Target: Bare, Round: 2, Throughput: 300, CPUPerReq: 70},
		{Scenario: ScChat, Target: Bare, Round: 3, Throughput: 200, CPUPerReq: 60},
		{Scenario: ScChat, Target: Serve, Round: 1, Throughput: 190, CPUPerReq: 70, Errors: 2, FirstError: "boom"},
		{Scenario: ScChat, Target: Serve, Round: 2, Throughput: 150, CPUPerReq: 90},
		{Scenario: ScChat, Target: Serve, Round: 3, Throughput: 170, CPUPerReq: 80},
	}
	r := &Report{Runs: runs, Options: map[string]string{"rate": "500"}}
	r.finish(AllTargets)
	bare, ok := r.get(ScChat, Bare)
	if !ok || bare.Throughput != 200 || bare.CPUPerReq != 60 {
		t.Fatalf("bare median %+v", bare)
	}
	serve, _ := r.get(ScChat, Serve)
	if serve.Throughput != 170 || serve.Errors != 2 || serve.FirstError != "boom" {
		t.Errorf("serve median %+v (errors: worst round)", serve)
	}
	want := map[string]bool{"chat throughput vs (b)": true, "CPU per request vs (b)": true}
	for _, c := range r.Checks {
		if c.Target != Serve {
			t.Errorf("check for %s without figures: %+v", c.Target, c)
		}
		switch c.What {
		case "chat throughput vs (b)": // 170/200 = 0.85 ≥ 0.8
			if !c.Pass {
				t.Errorf("%+v: want pass", c)
			}
		case "CPU per request vs (b)": // 80/60 = 1.33 > 1.3
			if c.Pass {
				t.Errorf("%+v: want miss", c)
			}
		}
		delete(want, c.What)
	}
	if len(want) > 0 {
		t.Errorf("checks missing: %v", want)
	}
	md := r.Markdown()
	for _, s := range []string{"### Non-streamed chat", "| (c) llm-proxy serve (SQLite, in-memory) | 170 |", "**miss**", "| pass |"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
}

func TestOptionsDefaultsAndSubsets(t *testing.T) {
	o := Options{Quick: true, Root: ".", Scenarios: []string{ScChat, ScSlowStreams}, Targets: []string{Serve, Direct}}
	if err := o.defaults(); err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 1 || o.SlowStreams != 100 || o.Scenarios[0] != ScSlowStreams || o.Targets[0] != Direct {
		t.Errorf("quick defaults / canonical order: %+v", o)
	}
	bad := Options{Root: ".", Targets: []string{"nginx"}}
	if err := bad.defaults(); err == nil {
		t.Error("unknown target: want an error")
	}
}

func TestStreamRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want time.Duration
	}{
		{"enough streams in Duration", Options{Duration: 10 * time.Second, Streams: 500, StreamRate: 100}, 10 * time.Second},
		{"longer to open Streams", Options{Duration: 2 * time.Second, Streams: 500, StreamRate: 100}, 5 * time.Second},
		{"no least count", Options{Duration: 2 * time.Second, StreamRate: 100}, 2 * time.Second},
	} {
		if got := tc.o.streamRun(); got != tc.want {
			t.Errorf("%s: streamRun = %v, want %v", tc.name, got, tc.want)
		}
	}
	full := Options{Root: "."}
	if err := full.defaults(); err != nil {
		t.Fatal(err)
	}
	if got := full.streamRun(); got != 5*time.Second {
		t.Errorf("default stream run %v, want 5s (500 streams at 100/s)", got)
	}
	quick := Options{Root: ".", Quick: true}
	if err := quick.defaults(); err != nil {
		t.Fatal(err)
	}
	if got := quick.streamRun(); got != quick.Duration {
		t.Errorf("quick stream run %v, want the quick duration %v", got, quick.Duration)
	}
}
