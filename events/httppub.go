package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// HTTPPublisher POSTs each event in binary mode (ce-* headers, data as the
// body) to one URL: K_SINK from a Knative SinkBinding (the broker ingress),
// an OpenFaaS /async-function/<name> URL, or the in-process Broker.
type HTTPPublisher struct {
	client cloudevents.Client
	target string
}

// NewHTTPPublisher sends to target. httpClient may be nil (a client with a
// 30s timeout is used).
func NewHTTPPublisher(target string, httpClient *http.Client) (*HTTPPublisher, error) {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(target), cehttp.WithClient(*httpClient))
	if err != nil {
		return nil, fmt.Errorf("cloudevents http client: %w", err)
	}
	return &HTTPPublisher{client: c, target: target}, nil
}

// Publish sends the events one by one, in order; failures are reported per
// event: 404/408/409/429/5xx and network errors are retryable, other 4xx
// permanent. After a retryable failure the rest of the batch is not sent
// (each gets that error), so a sink that comes back mid-batch never gets
// later events before earlier ones.
func (p *HTTPPublisher) Publish(ctx context.Context, evs []event.Event) error {
	var errs []error
	for i := range evs {
		err := sendResult(p.client.Send(ctx, evs[i]))
		if err != nil {
			if errs == nil {
				errs = make([]error, len(evs))
			}
			errs[i] = err
			if !IsPermanent(err) {
				rest := err
				if ctx.Err() != nil {
					rest = ctx.Err()
				}
				for j := i + 1; j < len(evs); j++ {
					errs[j] = rest
				}
				break
			}
		}
	}
	if errs == nil {
		return nil
	}
	return &BatchError{Errs: errs}
}

// sendResult maps a cloudevents send result to nil, a retryable error or a
// Permanent one.
func sendResult(res error) error {
	if cloudevents.IsACK(res) {
		return nil
	}
	var hr *cehttp.Result
	if cloudevents.ResultAs(res, &hr) {
		err := fmt.Errorf("event sink answered %d", hr.StatusCode)
		if RetryableStatus(hr.StatusCode) {
			return err
		}
		return Permanent(err)
	}
	if errors.Is(res, context.Canceled) || errors.Is(res, context.DeadlineExceeded) {
		return res
	}
	var ve event.ValidationError
	if errors.As(res, &ve) {
		return Permanent(res)
	}
	return fmt.Errorf("send event: %w", res)
}
