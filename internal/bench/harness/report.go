package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// scProcess holds per-process figures (peak RSS) of a round.
const scProcess = "process"

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	LoadAvg   string `json:"load_average_at_start"`
}

// Check is one target of the issue, evaluated.
type Check struct {
	Target string `json:"target"`
	What   string `json:"what"`
	Value  string `json:"value"`
	Limit  string `json:"limit"`
	Pass   bool   `json:"pass"`
	Note   string `json:"note,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Machine Machine           `json:"machine"`
	Options map[string]string `json:"options"`
	Started time.Time         `json:"started"`
	Elapsed string            `json:"elapsed"`
	Skipped map[string]string `json:"skipped_targets,omitempty"`
	Runs    []Measurement     `json:"runs"`
	Medians []Measurement     `json:"medians"`
	Checks  []Check           `json:"checks"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}

func (o Options) summary() map[string]string {
	return map[string]string{
		"rounds": fmt.Sprint(o.Rounds), "quick": fmt.Sprint(o.Quick), "duration": o.Duration.String(),
		"warmup": o.Warmup.String(), "concurrency": fmt.Sprint(o.Concurrency), "rate": fmt.Sprint(o.Rate),
		"stream_rate": fmt.Sprint(o.StreamRate), "stream_run": o.streamRun().String(), "stream_chunks": fmt.Sprint(o.StreamChunks),
		"slow_streams": fmt.Sprint(o.SlowStreams), "slow_delay": o.SlowDelay.String(),
		"scenarios": strings.Join(o.Scenarios, ","), "targets": strings.Join(o.Targets, ","),
		"target_log_level": o.TargetLogLevel, "target_env": strings.Join(o.TargetEnv, " "),
	}
}

// brief is the one-line progress output of a measurement.
func (m Measurement) brief() string {
	switch m.Scenario {
	case ScSlowStreams:
		return fmt.Sprintf("started %.0f/%.0f  %.1f KiB/stream  errors %.0f %s", m.Started, m.Streams, m.KiBPerStream, m.Errors, m.FirstError)
	case ScStream:
		return fmt.Sprintf("%.0f/s  first event p50 %.3f p99 %.3f ms  events %.0f-%.0f  cpu %.0f µs  errors %.0f %s",
			m.Throughput, m.FirstP50, m.FirstP99, m.EventsMin, m.EventsMax, m.CPUPerReq, m.Errors, m.FirstError)
	}
	return fmt.Sprintf("%.0f/s  p50 %.3f p99 %.3f ms  cpu %.0f µs/req  new conns/1k %.1f  hits %.0f  errors %.0f %s",
		m.Throughput, m.P50, m.P99, m.CPUPerReq, m.NewConns1k, m.Hits, m.Errors, m.FirstError)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// medianOf returns the field-wise median of ms (same scenario and target).
func medianOf(ms []Measurement) Measurement {
	out := Measurement{Scenario: ms[0].Scenario, Target: ms[0].Target}
	fields := []func(*Measurement) *float64{
		func(m *Measurement) *float64 { return &m.Requests },
		func(m *Measurement) *float64 { return &m.Errors },
		func(m *Measurement) *float64 { return &m.Dropped },
		func(m *Measurement) *float64 { return &m.Hits },
		func(m *Measurement) *float64 { return &m.Throughput },
		func(m *Measurement) *float64 { return &m.P50 },
		func(m *Measurement) *float64 { return &m.P99 },
		func(m *Measurement) *float64 { return &m.FirstP50 },
		func(m *Measurement) *float64 { return &m.FirstP99 },
		func(m *Measurement) *float64 { return &m.EventsMin },
		func(m *Measurement) *float64 { return &m.EventsMax },
		func(m *Measurement) *float64 { return &m.CPUPerReq },
		func(m *Measurement) *float64 { return &m.UpstreamRq },
		func(m *Measurement) *float64 { return &m.NewConns1k },
		func(m *Measurement) *float64 { return &m.Streams },
		func(m *Measurement) *float64 { return &m.Started },
		func(m *Measurement) *float64 { return &m.RSSBeforeKiB },
		func(m *Measurement) *float64 { return &m.RSSOpenKiB },
		func(m *Measurement) *float64 { return &m.KiBPerStream },
		func(m *Measurement) *float64 { return &m.PeakRSSKiB },
	}
	for _, f := range fields {
		xs := make([]float64, len(ms))
		for i := range ms {
			xs[i] = *f(&ms[i])
		}
		*f(&out) = median(xs)
	}
	// Errors: the worst round counts, not the median.
	for _, m := range ms {
		out.Errors = math.Max(out.Errors, m.Errors)
		out.EventsMin = math.Min(out.EventsMin, m.EventsMin)
		if out.FirstError == "" {
			out.FirstError = m.FirstError
		}
	}
	return out
}

func (r *Report) finish(targets []string) {
	for _, sc := range append(slices.Clone(AllScenarios), scProcess) {
		for _, t := range AllTargets {
			var ms []Measurement
			for _, m := range r.Runs {
				if m.Scenario == sc && m.Target == t {
					ms = append(ms, m)
				}
			}
			if len(ms) > 0 {
				r.Medians = append(r.Medians, medianOf(ms))
			}
		}
	}
	r.Checks = r.evaluate()
}

func (r *Report) get(sc, t string) (Measurement, bool) {
	for _, m := range r.Medians {
		if m.Scenario == sc && m.Target == t {
			return m, true
		}
	}
	return Measurement{}, false
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// evaluate checks the targets on the medians it has figures for.
func (r *Report) evaluate() []Check {
	var cs []Check
	add := func(c Check) { cs = append(cs, c) }
	both := []struct {
		t                     string
		thr, rateP50, rateP99 float64
	}{{Serve, 0.8, 0.05, 0.5}, {Function, 0.6, 0.2, 1}}
	for _, x := range both {
		if chat, ok := r.get(ScChat, x.t); ok {
			if bare, ok := r.get(ScChat, Bare); ok {
				q := ratio(chat.Throughput, bare.Throughput)
				add(Check{x.t, "chat throughput vs (b)", fmt.Sprintf("%.2f×", q), fmt.Sprintf("≥ %.1f×", x.thr), q >= x.thr, ""})
				c := ratio(chat.CPUPerReq, bare.CPUPerReq)
				add(Check{x.t, "CPU per request vs (b)", fmt.Sprintf("%.2f× (%.0f vs %.0f µs)", c, chat.CPUPerReq, bare.CPUPerReq), "≤ 1.3×", c <= 1.3, ""})
			}
			add(Check{x.t, "new upstream connections per 1,000 requests (chat)", fmt.Sprintf("%.1f", chat.NewConns1k), "≈ 0 (≤ 1)", chat.NewConns1k <= 1, ""})
		}
		if rate, ok := r.get(ScRate, x.t); ok {
			if bare, ok := r.get(ScRate, Bare); ok {
				d50, d99 := rate.P50-bare.P50, rate.P99-bare.P99
				add(Check{x.t, fmt.Sprintf("latency added at %s/s, p50", r.Options["rate"]), fmt.Sprintf("%.3f ms", d50), fmt.Sprintf("≤ %.2f ms", x.rateP50), d50 <= x.rateP50, ""})
				add(Check{x.t, fmt.Sprintf("latency added at %s/s, p99", r.Options["rate"]), fmt.Sprintf("%.3f ms", d99), fmt.Sprintf("≤ %.1f ms", x.rateP99), d99 <= x.rateP99, ""})
			}
		}
		if st, ok := r.get(ScStream, x.t); ok {
			if bare, ok := r.get(ScStream, Bare); ok {
				d := st.FirstP99 - bare.FirstP99
				add(Check{x.t, "stream time to first event, p99 vs (b)", fmt.Sprintf("%+.3f ms", d), "≤ +1 ms", d <= 1, ""})
				add(Check{x.t, "events per stream equal to (b)'s (none held back)", fmt.Sprintf("%.0f-%.0f vs %.0f-%.0f", st.EventsMin, st.EventsMax, bare.EventsMin, bare.EventsMax),
					"equal", st.EventsMin == bare.EventsMin && st.EventsMax == bare.EventsMax && st.Errors == 0, ""})
			}
		}
		if sl, ok := r.get(ScSlowStreams, x.t); ok {
			add(Check{x.t, fmt.Sprintf("%.0f concurrent streams: RSS per stream", sl.Streams), fmt.Sprintf("%.1f KiB", sl.KiBPerStream), "≤ 90 KiB", sl.KiBPerStream <= 90 && sl.Started == sl.Streams, ""})
			add(Check{x.t, fmt.Sprintf("%.0f concurrent streams: errors", sl.Streams), fmt.Sprintf("%.0f", sl.Errors), "0", sl.Errors == 0, sl.FirstError})
		}
		if c, ok := r.get(ScCache, x.t); ok {
			if d, ok := r.get(ScCache, Direct); ok {
				q := ratio(c.Throughput, d.Throughput)
				hits := ratio(c.Hits, c.Requests)
				note := ""
				if x.t == Function {
					note = "Redis cache backend (the target is for the in-memory cache)"
				}
				add(Check{x.t, "cache-hit throughput vs (a)", fmt.Sprintf("%.2f× (%.0f%% hits)", q, 100*hits), "≥ 0.8×", q >= 0.8 && hits > 0.99, note})
			}
		}
		for _, sc := range []string{ScRejectMalformed, ScRejectUnknown} {
			if rj, ok := r.get(sc, x.t); ok {
				if d, ok := r.get(sc, Direct); ok {
					q := ratio(rj.Throughput, d.Throughput)
					add(Check{x.t, "throughput of " + strings.TrimPrefix(sc, "reject-") + " token rejections vs (a)", fmt.Sprintf("%.2f×", q), "≥ 1×", q >= 1 && rj.Errors == 0, ""})
				}
			}
		}
	}
	return cs
}

// Markdown renders the report as tables.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	runs := r.Options["duration"] + " per measured run"
	if sr := r.Options["stream_run"]; sr != "" && sr != r.Options["duration"] {
		runs += " (" + sr + " for streams)"
	}
	fmt.Fprintf(&b, "Measured %s on %d × %s, %s, Linux %s (load average at start %s); %s rounds, %s, run took %s.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), m.CPUs, m.CPUModel, m.GoVersion, m.Kernel, m.LoadAvg, r.Options["rounds"], runs, r.Elapsed)
	if len(r.Skipped) > 0 {
		for _, t := range AllTargets {
			if why, ok := r.Skipped[t]; ok {
				fmt.Fprintf(&b, "**Skipped %s**: %s\n\n", targetLabels[t], why)
			}
		}
	}
	b.WriteString("Medians over rounds. Ratios: ×(a) against the upstream directly, ×(b) against the bare reverse proxy. ")
	b.WriteString("Added latency: the target's percentile minus (b)'s (and (a)'s). CPU: the target process's utime+stime per completed request ((a): the upstream's own). ")
	b.WriteString("New conns/1k: connections the upstream accepted per 1,000 requests it served.\n\n")

	targets := func(sc string) []Measurement {
		var out []Measurement
		for _, t := range AllTargets {
			if x, ok := r.get(sc, t); ok {
				out = append(out, x)
			}
		}
		return out
	}
	ref := func(sc, t string) Measurement { x, _ := r.get(sc, t); return x }
	f := func(v float64, format string) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "–"
		}
		return fmt.Sprintf(format, v)
	}
	errs := func(x Measurement) string {
		s := fmt.Sprintf("%.0f", x.Errors)
		if x.Dropped > 0 {
			s += fmt.Sprintf(" (+%.0f dropped)", x.Dropped)
		}
		return s
	}
	for _, sc := range AllScenarios {
		rows := targets(sc)
		if len(rows) == 0 {
			continue
		}
		a, bb := ref(sc, Direct), ref(sc, Bare)
		fmt.Fprintf(&b, "### %s\n\n", scenarioTitles[sc])
		switch sc {
		case ScChat, ScCache, ScRejectMalformed, ScRejectUnknown:
			b.WriteString("| target | req/s | ×(a) | ×(b) | p50 ms | p99 ms | CPU µs/req | CPU ×(b) | new conns/1k | hits | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
			for _, x := range rows {
				fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.3f | %.3f | %.0f | %s | %s | %s | %s |\n", targetLabels[x.Target], x.Throughput,
					f(ratio(x.Throughput, a.Throughput), "%.2f"), f(ratio(x.Throughput, bb.Throughput), "%.2f"), x.P50, x.P99, x.CPUPerReq,
					f(ratio(x.CPUPerReq, bb.CPUPerReq), "%.2f"), f(x.NewConns1k, "%.1f"), f(100*ratio(x.Hits, x.Requests), "%.0f%%"), errs(x))
			}
		case ScRate:
			b.WriteString("| target | req/s | p50 ms | p99 ms | added p50 vs (b) | added p99 vs (b) | added p50 vs (a) | added p99 vs (a) | CPU µs/req | new conns/1k | errors |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
			for _, x := range rows {
				fmt.Fprintf(&b, "| %s | %.0f | %.3f | %.3f | %+.3f | %+.3f | %+.3f | %+.3f | %.0f | %s | %s |\n", targetLabels[x.Target], x.Throughput, x.P50, x.P99,
					x.P50-bb.P50, x.P99-bb.P99, x.P50-a.P50, x.P99-a.P99, x.CPUPerReq, f(x.NewConns1k, "%.1f"), errs(x))
			}
		case ScStream:
			b.WriteString("| target | streams/s | first event p50 ms | first event p99 ms | p99 vs (b) | whole stream p50 ms | events/stream | CPU µs/stream | errors |\n|---|---|---|---|---|---|---|---|---|\n")
			for _, x := range rows {
				fmt.Fprintf(&b, "| %s | %.0f | %.3f | %.3f | %+.3f | %.3f | %.0f–%.0f | %.0f | %s |\n", targetLabels[x.Target], x.Throughput, x.FirstP50, x.FirstP99,
					x.FirstP99-bb.FirstP99, x.P50, x.EventsMin, x.EventsMax, x.CPUPerReq, errs(x))
			}
		case ScSlowStreams:
			b.WriteString("| target | streams open at once | RSS before MiB | RSS with all open MiB | KiB per stream | events/stream | errors |\n|---|---|---|---|---|---|---|\n")
			for _, x := range rows {
				fmt.Fprintf(&b, "| %s | %.0f/%.0f | %.1f | %.1f | %.1f | %.0f–%.0f | %s |\n", targetLabels[x.Target], x.Started, x.Streams,
					x.RSSBeforeKiB/1024, x.RSSOpenKiB/1024, x.KiBPerStream, x.EventsMin, x.EventsMax, errs(x))
			}
		}
		b.WriteString("\n")
	}
	if rows := targets(scProcess); len(rows) > 0 {
		b.WriteString("### Peak RSS (VmHWM at the end of a round)\n\n| target | peak RSS MiB |\n|---|---|\n")
		for _, x := range rows {
			note := ""
			if x.Target == Direct {
				note = " (the upstream process, which serves every target)"
			}
			fmt.Fprintf(&b, "| %s | %.1f%s |\n", targetLabels[x.Target], x.PeakRSSKiB/1024, note)
		}
		b.WriteString("\n")
	}
	if len(r.Checks) > 0 {
		b.WriteString("### Targets\n\n| target | what | measured | target | result |\n|---|---|---|---|---|\n")
		for _, c := range r.Checks {
			res := "**miss**"
			if c.Pass {
				res = "pass"
			}
			if c.Note != "" {
				res += " (" + c.Note + ")"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", targetLabels[c.Target], c.What, c.Value, c.Limit, res)
		}
		b.WriteString("\n")
	}
	return b.String()
}
