package manage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxResponse bounds what the CLI reads from the API.
const maxResponse = 16 << 20

// call is one invocation: flags, HTTP client, output.
type call struct {
	g      *globals
	client *http.Client
	out    io.Writer
}

// apiError is an error answer of the management API.
type apiError struct {
	Status  int
	Message string
	Code    string
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (HTTP %d, code %s)", e.Message, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and returns the answer of a 2xx, else an *apiError.
func (c *call) do(ctx context.Context, method, path string, query url.Values, body any) (*response, error) {
	u := strings.TrimRight(c.g.baseURL, "/") + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.g.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "llm-proxy-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &apiError{Status: resp.StatusCode}
		var eb struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			e.Message, e.Code = eb.Error, eb.Code
		} else {
			e.Message = http.StatusText(resp.StatusCode)
		}
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			e.Message += "; retry after " + ra + "s"
		}
		return nil, e
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// decode unmarshals the response body.
func (r *response) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("unexpected response from the API: %w", err)
	}
	return nil
}

// printJSON writes the API's JSON, indented.
func (c *call) printJSON(b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		_, err = c.out.Write(b)
		return err
	}
	buf.WriteByte('\n')
	_, err := c.out.Write(unescapeHTML(buf.Bytes()))
	return err
}

// unescapeHTML undoes encoding/json's HTML escaping (\u003c, \u003e,
// \u0026) in JSON text meant for a terminal; an escaped backslash followed
// by "u003e" stays as it is.
func unescapeHTML(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch string(b[i+2 : i+6]) {
			case "003c", "003C":
				out, i = append(out, '<'), i+5
				continue
			case "003e", "003E":
				out, i = append(out, '>'), i+5
				continue
			case "0026":
				out, i = append(out, '&'), i+5
				continue
			}
		}
		out, i = append(out, b[i], b[i+1]), i+1 // any other escape, kept whole
	}
	return out
}

func (c *call) printValue(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.printJSON(b)
}
