// Package dispatch is the `llm-proxy dispatch` command: a Redis Streams
// consumer delivering events to one dispatcher backend, and the dead-letter
// tools.
//
//	llm-proxy dispatch [--service file|lunary|helicone|webhook] [--endpoint …] [flags]
//	llm-proxy dispatch dead-letters list [--count N] [--json]
//	llm-proxy dispatch dead-letters replay [--all | ID…]
//
// Dispatchers in one consumer group (REDIS_CONSUMER_GROUP) share the work;
// dispatchers in different groups each receive every event (fan-out).
package dispatch

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/functions/dispatcher"
	"github.com/llm-proxy/llm-proxy/shared/config"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

const usageText = `Usage:
  llm-proxy dispatch [flags]                      consume the event stream and deliver to a backend
  llm-proxy dispatch dead-letters list [--count N] [--json]
  llm-proxy dispatch dead-letters replay [--all | ID...]

Flags (defaults from the environment):
  --service         file, lunary, helicone or webhook (DISPATCHER_SERVICE)
  --endpoint        file path or URL (DISPATCHER_ENDPOINT)
  --api-key         lunary/helicone API key (DISPATCHER_API_KEY, LLM_PROXY_API_KEY)
  --webhook-secret  HMAC key of the webhook backend (DISPATCHER_WEBHOOK_SECRET)
  --stream          Redis stream (REDIS_STREAM_KEY)
  --group           consumer group (REDIS_CONSUMER_GROUP)
  --consumer        consumer name (REDIS_CONSUMER_NAME)
  --batch-size      events per batch (REDIS_STREAM_BATCH_SIZE)
  --block           XREADGROUP block time (REDIS_STREAM_BLOCK_TIME)
  --claim-time      reclaim events idle this long at dead consumers (REDIS_STREAM_CLAIM_TIME)
  --max-attempts    failures before dead-lettering (DISPATCHER_MAX_ATTEMPTS)
  --dead-letter-stream  (REDIS_DEAD_LETTER_STREAM_KEY)

Requires REDIS_ADDR.
`

// Run executes `llm-proxy dispatch` with args (without "dispatch"). It
// returns when ctx ends (SIGTERM) or on a fatal error.
func Run(ctx context.Context, args []string, cfg config.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(args) > 0 && (args[0] == "help" || args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, usageText)
		return ExitOK
	}
	ev := cfg.Events
	fs := flag.NewFlagSet("dispatch", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&ev.DispatcherService, "service", ev.DispatcherService, "")
	fs.StringVar(&ev.DispatcherEndpoint, "endpoint", ev.DispatcherEndpoint, "")
	apiKey := fs.String("api-key", ev.APIKey(), "")
	fs.StringVar(&ev.WebhookSecret, "webhook-secret", ev.WebhookSecret, "")
	fs.StringVar(&ev.StreamKey, "stream", ev.StreamKey, "")
	fs.StringVar(&ev.ConsumerGroup, "group", ev.ConsumerGroup, "")
	fs.StringVar(&ev.ConsumerName, "consumer", ev.ConsumerName, "")
	fs.Int64Var(&ev.StreamBatchSize, "batch-size", ev.StreamBatchSize, "")
	fs.DurationVar(&ev.StreamBlockTime, "block", ev.StreamBlockTime, "")
	fs.DurationVar(&ev.StreamClaimTime, "claim-time", ev.StreamClaimTime, "")
	fs.IntVar(&ev.DispatcherMaxAttempts, "max-attempts", ev.DispatcherMaxAttempts, "")
	fs.StringVar(&ev.DeadLetterStream, "dead-letter-stream", ev.DeadLetterStream, "")

	sub := ""
	if len(args) > 0 && args[0] == "dead-letters" {
		if len(args) < 2 {
			fmt.Fprintf(stderr, "llm-proxy dispatch dead-letters: list or replay?\n\n%s", usageText)
			return ExitUsage
		}
		sub, args = args[1], args[2:]
	}
	count := fs.Int64("count", 100, "")
	asJSON := fs.Bool("json", false, "")
	all := fs.Bool("all", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n\n%s", err, usageText)
		return ExitUsage
	}
	ev.DispatcherAPIKey = *apiKey
	if cfg.Redis.Addr == "" {
		fmt.Fprintln(stderr, "llm-proxy dispatch: REDIS_ADDR is required (the event stream lives in Redis)")
		return ExitError
	}
	rdb := redis.NewClient(&redis.Options{
		Addr: cfg.Redis.Addr, DB: cfg.Redis.DB, Password: cfg.Redis.Password,
		DialTimeout: cfg.Redis.Timeout, ReadTimeout: cfg.Redis.Timeout, WriteTimeout: cfg.Redis.Timeout,
	})
	defer rdb.Close()

	switch sub {
	case "":
		if fs.NArg() > 0 {
			fmt.Fprintf(stderr, "llm-proxy dispatch: unexpected argument %q\n\n%s", fs.Arg(0), usageText)
			return ExitUsage
		}
		return consume(ctx, rdb, cfg, ev, log, stdout, stderr)
	case "list":
		dls, err := ListDeadLetters(ctx, rdb, ev.DeadLetterKey(), *count)
		if err != nil {
			fmt.Fprintf(stderr, "llm-proxy dispatch dead-letters list: %v\n", err)
			return ExitError
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(dls)
			return ExitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTYPE\tEVENT ID\tATTEMPTS\tFAILED AT\tERROR")
		for _, d := range dls {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Type, d.EventID, d.Attempts, d.FailedAt.Format(time.RFC3339), d.Error)
		}
		_ = tw.Flush()
		return ExitOK
	case "replay":
		if !*all && fs.NArg() == 0 {
			fmt.Fprintf(stderr, "llm-proxy dispatch dead-letters replay: name entry IDs or --all\n\n%s", usageText)
			return ExitUsage
		}
		n, err := ReplayDeadLetters(ctx, rdb, ev.DeadLetterKey(), ev.StreamKey, ev.StreamMaxLen, fs.Args())
		if err != nil {
			fmt.Fprintf(stderr, "llm-proxy dispatch dead-letters replay: %v\n", err)
			return ExitError
		}
		fmt.Fprintf(stdout, "replayed %d event(s) to %s\n", n, ev.StreamKey)
		return ExitOK
	}
	fmt.Fprintf(stderr, "llm-proxy dispatch dead-letters: unknown subcommand %q\n\n%s", sub, usageText)
	return ExitUsage
}

func consume(ctx context.Context, rdb *redis.Client, cfg config.Config, ev config.Events, log *slog.Logger, stdout, stderr io.Writer) int {
	b, err := dispatcher.NewBackend(dispatcher.BackendConfigFrom(ev))
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n", err)
		return ExitUsage
	}
	if c, ok := b.(io.Closer); ok {
		defer c.Close()
	}
	if b, err = pauseHook(b, os.Getenv(TestPauseEnv), stdout); err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n", err)
		return ExitUsage
	}
	name, release := consumerName(ev.ConsumerName, streamGroup{cfg.Redis.KeyPrefix, ev.StreamKey, ev.ConsumerGroup}, b.Name(), log)
	defer release()
	owner := dispatcher.NewOwner(name)
	dedup := dispatcher.NewRedisDedup(rdb, cfg.Redis.KeyPrefix+"dispatch:"+ev.ConsumerGroup+":", ev.DedupTTL, 2*ev.DispatcherTimeout).
		TrackOwners(cfg.Redis.KeyPrefix+"dispatch-consumers:"+ev.ConsumerGroup+":", OwnerTTL(ev.StreamClaimTime))
	d, err := dispatcher.New(dispatcher.Deps{Backend: b, Dedup: dedup, Owner: owner, Log: log})
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n", err)
		return ExitError
	}
	stopAlive := dedup.KeepAlive(ctx, owner, log)
	defer stopAlive()
	c, err := NewConsumer(rdb, d, ConsumerOptions{
		Stream: ev.StreamKey, Group: ev.ConsumerGroup, Consumer: name, DeadLetter: ev.DeadLetterKey(),
		BatchSize: ev.StreamBatchSize, Block: ev.StreamBlockTime, ClaimIdle: ev.StreamClaimTime,
		MaxAttempts: ev.DispatcherMaxAttempts,
	}, log)
	if err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n", err)
		return ExitUsage
	}
	if err := c.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "llm-proxy dispatch: %v\n", err)
		return ExitError
	}
	return ExitOK
}

// OwnerTTL is how long a dispatcher that stopped renewing its liveness (it
// died) still counts as running for the others of its group: a third of
// REDIS_STREAM_CLAIM_TIME (claimTime), within 1 to 10 s. From a claim time
// of 1 s up it is at most the claim time, so the owner of an event another
// dispatcher reclaims (idle that long) is known dead by then.
func OwnerTTL(claimTime time.Duration) time.Duration {
	return min(max(claimTime/3, time.Second), 10*time.Second)
}
