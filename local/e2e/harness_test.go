// Package e2e drives the real binaries as a user would: `llm-proxy serve`,
// the `llm-proxy` CLI, and the standalone function binaries, each as its own
// process on real SQLite, PostgreSQL and Redis.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

var (
	buildDir  string
	buildMu   sync.Mutex
	built     = map[string]string{}
	moduleDir string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llm-proxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	wd, _ := os.Getwd()
	moduleDir = filepath.Clean(filepath.Join(wd, "..", ".."))
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds the main package pkg (module-relative, e.g.
// "./local/cmd/llm-proxy") once per test run and returns its path.
func binary(t testing.TB, pkg string) string {
	t.Helper()
	testenv.NeedsService(t, "the binaries it builds")
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	out := filepath.Join(buildDir, strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_"))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleDir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Process is a running binary with captured output.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	stdout testenv.Buffer
	stderr testenv.Buffer
	lines  chan string
	done   chan struct{}
}

// start runs bin with args and env (on top of a minimal environment).
func start(t testing.TB, bin string, env map[string]string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LOG_LEVEL=warn"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &Process{t: t, cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	outR, outW := io.Pipe()
	cmd.Stdout = outW
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			_, _ = p.stdout.Write([]byte(sc.Text() + "\n"))
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		_ = outW.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Signal(syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("%s stdout:\n%s\nstderr:\n%s", filepath.Base(bin), p.Stdout(), p.Stderr())
		}
	})
	return p
}

// Stdout and Stderr return what the process printed so far.
func (p *Process) Stdout() string { return p.stdout.String() }
func (p *Process) Stderr() string { return p.stderr.String() }

// Signal sends sig if the process is still running.
func (p *Process) Signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// Wait waits for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("process did not exit within %v", timeout)
		return -1
	}
}

// waitLine waits for a stdout line matching re and returns its submatches.
func (p *Process) waitLine(re *regexp.Regexp, timeout time.Duration) []string {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-p.lines:
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-p.done:
			p.t.Fatalf("process exited before printing %v\nstdout:\n%s\nstderr:\n%s", re, p.Stdout(), p.Stderr())
		case <-deadline:
			p.t.Fatalf("no line matching %v within %v\nstdout:\n%s\nstderr:\n%s", re, timeout, p.Stdout(), p.Stderr())
		}
	}
}

var listeningRE = regexp.MustCompile(`listening on (\S+)`)

// Serve is a running `llm-proxy serve`.
type Serve struct {
	*Process
	URL string
}

// startServe runs `llm-proxy serve` on a free loopback port with its data in
// dataDir and the extra env, and waits until it listens.
func startServe(t testing.TB, dataDir string, env map[string]string) *Serve {
	t.Helper()
	full := map[string]string{
		"DATA_DIR":      dataDir,
		"DATABASE_PATH": filepath.Join(dataDir, "llm-proxy.db"),
	}
	for k, v := range env {
		full[k] = v
	}
	return startServeEnv(t, full)
}

// startServeEnv runs `llm-proxy serve` on a free loopback port with exactly
// env (plus LISTEN_ADDR) and waits until it is ready.
func startServeEnv(t testing.TB, env map[string]string) *Serve {
	t.Helper()
	full := map[string]string{"LISTEN_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		full[k] = v
	}
	p := start(t, binary(t, "./local/cmd/llm-proxy"), full, "serve")
	m := p.waitLine(listeningRE, 30*time.Second)
	s := &Serve{Process: p, URL: "http://" + m[1]}
	waitReady(t, s.URL+"/ready")
	return s
}

// waitReady polls url (every 5 ms) until it answers 200.
func waitReady(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s not ready within 30s", url)
}

// cli runs `llm-proxy args…` to completion and returns stdout, stderr and
// the exit code.
func cli(t testing.TB, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t, "./local/cmd/llm-proxy"), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run llm-proxy %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return out.String(), errb.String(), code
}

// api calls the management or proxy API and decodes a JSON answer into out
// (when non-nil); it returns the status code.
func api(t testing.TB, method, url, bearer string, body any, out any) int {
	t.Helper()
	var rdr io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rdr = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rdr)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}
