package events

import (
	"context"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"
)

// deliverInProcess hands the events at idx to t.Deliver, in calls of at
// most MaxBatchBytes of data, retrying the events that failed transiently;
// fail records the events that still failed.
func (b *Broker) deliverInProcess(ctx context.Context, t Trigger, evs []event.Event, idx []int, fail func([]int, error)) {
	matched := evs
	if len(idx) != len(evs) {
		matched = make([]event.Event, len(idx))
		for j, i := range idx {
			matched[j] = evs[i]
		}
	}
	for lo := 0; lo < len(matched); {
		hi, size := lo+1, len(matched[lo].Data())
		for hi < len(matched) && size+len(matched[hi].Data()) <= b.opts.MaxBatchBytes {
			size += len(matched[hi].Data())
			hi++
		}
		for j, err := range b.deliverChunkInProcess(ctx, t, matched[lo:hi]) {
			if err != nil {
				fail(idx[lo+j:lo+j+1], err)
			}
		}
		lo = hi
	}
}

// deliverChunkInProcess delivers batch with retries and returns one error per
// event, or nil when all were delivered.
func (b *Broker) deliverChunkInProcess(ctx context.Context, t Trigger, batch []event.Event) []error {
	var final []error // per event of batch, allocated on the first failure
	failed := 0
	pending, pos := batch, []int(nil) // pos[j]: index in batch of pending[j]; nil: identity
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if err := Sleep(ctx, Backoff(b.opts.Backoff, b.opts.MaxBackoff, attempt)); err != nil {
				for j := range pending {
					final[at(pos, j)] = err
				}
				failed += len(pending)
				break
			}
		}
		errs := b.callDeliver(ctx, t, pending)
		var retry []event.Event
		var retryPos []int
		for j, err := range errs {
			if err == nil {
				continue
			}
			if final == nil {
				final = make([]error, len(batch))
			}
			if IsPermanent(err) || attempt >= b.opts.Retries || ctx.Err() != nil {
				final[at(pos, j)] = err
				failed++
				continue
			}
			retry = append(retry, pending[j])
			retryPos = append(retryPos, at(pos, j))
		}
		if len(retry) == 0 {
			break
		}
		pending, pos = retry, retryPos
	}
	b.delivered.Add(float64(len(batch) - failed))
	if failed == 0 {
		return nil
	}
	b.failed.Add(float64(failed))
	var first *event.Event
	var err error
	for j := range final {
		if final[j] != nil {
			first, err = &batch[j], final[j]
			break
		}
	}
	b.log.Error("event batch delivery failed", "trigger", t.Name, "events", failed, "of", len(batch),
		"first_type", first.Type(), "first_source", first.Source(), "first_id", first.ID(), "error", err)
	return final
}

// at maps a position in the pending slice to one in the batch.
func at(pos []int, j int) int {
	if pos == nil {
		return j
	}
	return pos[j]
}

// callDeliver runs one attempt of t.Deliver under the per-attempt timeout
// and returns one error per event (nil when all were delivered). A Deliver
// that panics or answers for the wrong number of events fails them all
// (retryably): an in-process subscriber must not take the broker down.
func (b *Broker) callDeliver(ctx context.Context, t Trigger, evs []event.Event) (errs []error) {
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			errs = all(len(evs), fmt.Errorf("subscriber %s panicked: %v", t.Name, r))
		}
	}()
	errs = t.Deliver(ctx, evs)
	if errs != nil && len(errs) != len(evs) {
		return all(len(evs), fmt.Errorf("subscriber %s answered %d results for %d events", t.Name, len(errs), len(evs)))
	}
	return errs
}

func all(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}
