package dispatcher

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/llm-proxy/llm-proxy/events"
)

// Webhook headers.
const (
	HeaderSignature = "X-LLM-Proxy-Signature" // sha256=<hex HMAC-SHA-256 of "<timestamp>.<body>">
	HeaderTimestamp = "X-LLM-Proxy-Timestamp" // Unix seconds when the request was signed
	HeaderEventID   = "X-LLM-Proxy-Event-Id"
	HeaderEventType = "X-LLM-Proxy-Event-Type"
)

// WebhookBackend POSTs each event as structured CloudEvents JSON, signed:
// X-LLM-Proxy-Signature: sha256=<hex(HMAC-SHA-256(secret, timestamp + "." + body))>
// with the timestamp in X-LLM-Proxy-Timestamp. Receivers check it with
// VerifyWebhook.
type WebhookBackend struct {
	Endpoint string
	Secret   []byte
	Client   *http.Client
	Now      func() time.Time // nil: time.Now
}

// Name implements Backend.
func (b *WebhookBackend) Name() string { return ServiceWebhook }

// Accepts implements Backend: every event type.
func (b *WebhookBackend) Accepts(string) bool { return true }

// SignWebhook returns the signature header value for body sent at ts.
func SignWebhook(secret []byte, ts int64, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyWebhook checks a webhook request's signature and that its timestamp
// is within tolerance of now.
func VerifyWebhook(secret []byte, signature, timestamp string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return errors.New("webhook: bad timestamp")
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return errors.New("webhook: timestamp outside tolerance")
	}
	want := SignWebhook(secret, ts, body)
	if !strings.HasPrefix(signature, "sha256=") || !hmac.Equal([]byte(signature), []byte(want)) {
		return errors.New("webhook: signature mismatch")
	}
	return nil
}

// RawEvents implements RawBackend: the body is the event as it is.
func (b *WebhookBackend) RawEvents() {}

// Deliver implements Backend: one signed POST per event.
func (b *WebhookBackend) Deliver(ctx context.Context, recs []Record) error {
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	errs := make([]error, len(recs))
	failed := false
	for i := range recs {
		ev := &recs[i].Event
		body, err := events.EncodeEvent(ev)
		if err != nil {
			err = events.Permanent(err)
		} else {
			ts := now().Unix()
			h := http.Header{}
			h.Set("Content-Type", "application/json")
			h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
			h.Set(HeaderSignature, SignWebhook(b.Secret, ts, body))
			h.Set(HeaderEventID, ev.ID())
			h.Set(HeaderEventType, ev.Type())
			h.Set("User-Agent", "llm-proxy-dispatcher")
			err = post(ctx, b.Client, b.Endpoint, body, h)
		}
		if err != nil {
			errs[i], failed = fmt.Errorf("webhook: %w", err), true
		}
	}
	if !failed {
		return nil
	}
	return &events.BatchError{Errs: errs}
}
