package events

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Publisher sends a batch of events somewhere. It returns nil when every
// event was accepted; a *BatchError when only some failed; an error wrapped
// with Permanent when retrying cannot help; any other error is retried.
type Publisher interface {
	Publish(ctx context.Context, evs []event.Event) error
}

// PublisherFunc adapts a function to Publisher.
type PublisherFunc func(ctx context.Context, evs []event.Event) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, evs []event.Event) error { return f(ctx, evs) }

// Discard is a Publisher that accepts and forgets everything
// (LLM_PROXY_EVENT_BUS=none).
var Discard Publisher = PublisherFunc(func(context.Context, []event.Event) error { return nil })

// BatchError reports which events of a batch failed: Errs has one entry per
// event, nil for the ones that were accepted.
type BatchError struct {
	Errs []error
}

func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			n++
			if first == nil {
				first = err
			}
		}
	}
	return fmt.Sprintf("%d of %d events failed: %v", n, len(e.Errs), first)
}

// Unwrap returns the individual errors.
func (e *BatchError) Unwrap() []error { return e.Errs }

// ErrPermanent marks an error that retrying cannot fix (the receiver rejected
// the event as invalid).
var ErrPermanent = errors.New("permanent failure")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() []error      { return []error{e.err, ErrPermanent} }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool { return errors.Is(err, ErrPermanent) }

// errorsFor expands a Publish error into one error per event.
func errorsFor(err error, n int) []error {
	out := make([]error, n)
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == n {
		copy(out, be.Errs)
		return out
	}
	for i := range out {
		out[i] = err
	}
	return out
}

// Backoff is an exponential backoff with full jitter: attempt n (from 1)
// waits a random duration in [d/2, d] where d = base·2^(n-1), capped at max.
func Backoff(base, max time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(d-half)+1))
}

// Sleep waits d or until ctx is done (then it returns ctx's error): the
// pause between retries of publishers and consumers.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// RetryableStatus reports whether an HTTP status from an event receiver is
// worth retrying (Knative's SelectiveRetry: 404, 408, 409, 429, 5xx).
func RetryableStatus(code int) bool {
	return code >= 500 || code == 404 || code == 408 || code == 409 || code == 429
}
