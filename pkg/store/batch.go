package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/internal/wait"
	"github.com/pay-theory/streamer/pkg/store/schema"
)

var errNoValue = errors.New("response carried no counter value")

// parallel runs fn(i) for i in [0,n) on at most workers goroutines, stops
// starting new work once ctx is done or an error occurred, and returns every
// error joined (ctx's error if it stopped early).
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return ctx.Err()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					cancel() // fail fast: the caller retries the whole call
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if len(errs) == 0 {
		return ctx.Err()
	}
	// Workers cancelled by a sibling's failure (or by the caller) report
	// context errors; keep only the root causes unless that is all there is.
	var root []error
	for _, e := range errs {
		if !isCtxErr(e) {
			root = append(root, e)
		}
	}
	if len(root) == 0 {
		root = errs[:1]
	}
	return errors.Join(root...)
}

// backoff waits before retry attempt (1-based) with capped exponential
// backoff and equal jitter; it returns ctx's error if ctx ends first.
func (d *Dynamo) backoff(ctx context.Context, attempt int) error {
	delay := d.base << min(attempt-1, 20)
	if delay > d.max || delay <= 0 {
		delay = d.max
	}
	return wait.Sleep(ctx, delay/2+rand.N(delay/2+1))
}

// retryUnprocessed calls step (one batch request that queues its own
// unprocessed remainder for the next call and returns its size) until nothing
// is left, backing off between attempts. After BatchAttempts it returns how
// many remained, without an error: the caller's other chunks keep going so
// its count covers the whole call.
func (d *Dynamo) retryUnprocessed(ctx context.Context, op, what string, step func() (int, error)) (int, error) {
	for attempt := 1; ; attempt++ {
		n, err := step()
		if err != nil || n == 0 {
			return 0, err
		}
		if attempt >= d.attempts {
			return n, nil
		}
		d.log.DebugContext(ctx, "store: retrying unprocessed "+what, "op", op, what, n, "attempt", attempt)
		if err := d.backoff(ctx, attempt); err != nil {
			return 0, err
		}
	}
}

func chunks(n, size int) int { return (n + size - 1) / size }

// dedupe returns the distinct ids in a stable order, validating each.
func dedupe(ids []string) ([]string, error) {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		if err := validateConnectionID(id); err != nil {
			return nil, err
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out, nil
}

// AddSent adds sent-message counts, one conditional UpdateItem ADD per
// distinct id (at most UpdateWorkers in flight). Ids whose record is gone are
// skipped, never recreated; zero counts are ignored.
func (d *Dynamo) AddSent(ctx context.Context, counts map[string]int64) error {
	ids := make([]string, 0, len(counts))
	for id, n := range counts {
		if err := validateConnectionID(id); err != nil {
			return err
		}
		if n < 0 {
			return invalid("counts["+strconv.Quote(id)+"]", "is negative (%d)", n)
		}
		if n > 0 {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids) // deterministic order helps reading logs and tests
	return parallel(ctx, len(ids), d.updaters, func(ctx context.Context, i int) error {
		id := ids[i]
		_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(d.table),
			Key:                       keyOf(id),
			UpdateExpression:          aws.String("ADD #ms :n"),
			ConditionExpression:       aws.String("attribute_exists(#id)"),
			ExpressionAttributeNames:  map[string]string{"#ms": schema.AttrMessagesSent, "#id": schema.AttrConnectionID},
			ExpressionAttributeValues: map[string]types.AttributeValue{":n": num(counts[id])},
		})
		if isConditionFailed(err) {
			return nil // the connection went away meanwhile: nothing to count
		}
		return d.wrapErr("add sent", strconv.Quote(id), err)
	})
}

// Existing returns the ids that have an unexpired record, reading with
// BatchGetItem in chunks of 100 and retrying unprocessed keys.
func (d *Dynamo) Existing(ctx context.Context, connectionIDs []string) (map[string]bool, error) {
	ids, err := dedupe(connectionIDs)
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(ids))
	var (
		mu   sync.Mutex
		left int
	)
	now := d.now()
	err = parallel(ctx, chunks(len(ids), BatchGetLimit), d.workers, func(ctx context.Context, i int) error {
		part := ids[i*BatchGetLimit : min((i+1)*BatchGetLimit, len(ids))]
		keys := make([]map[string]types.AttributeValue, len(part))
		for j, id := range part {
			keys[j] = keyOf(id)
		}
		req := map[string]types.KeysAndAttributes{d.table: {
			Keys:                     keys,
			ConsistentRead:           aws.Bool(true),
			ProjectionExpression:     aws.String("#id, #ttl"),
			ExpressionAttributeNames: map[string]string{"#id": schema.AttrConnectionID, "#ttl": schema.AttrTTL},
		}}
		n, err := d.retryUnprocessed(ctx, "existing", "keys", func() (int, error) {
			out, err := d.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return 0, d.wrapErr("existing", fmt.Sprintf("(%d keys)", len(req[d.table].Keys)), err)
			}
			mu.Lock()
			for _, item := range out.Responses[d.table] {
				c, err := UnmarshalItem(item)
				if err == nil && !c.Expired(now) {
					found[c.ConnectionID] = true
				}
			}
			mu.Unlock()
			req = out.UnprocessedKeys
			return len(req[d.table].Keys), nil
		})
		mu.Lock()
		left += n
		mu.Unlock()
		return err
	})
	if err != nil {
		return nil, err
	}
	if left > 0 {
		return nil, fmt.Errorf("store: existing: %w", &UnprocessedError{Op: "BatchGetItem", Remaining: left, Attempts: d.attempts})
	}
	return found, nil
}

// DeleteMany removes records with BatchWriteItem in chunks of 25, retrying
// unprocessed items with backoff; after BatchAttempts it returns an
// *UnprocessedError saying how many remained. Missing ids are not an error.
func (d *Dynamo) DeleteMany(ctx context.Context, connectionIDs []string) error {
	ids, err := dedupe(connectionIDs)
	if err != nil {
		return err
	}
	reqs := make([]types.WriteRequest, len(ids))
	for i, id := range ids {
		reqs[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: keyOf(id)}}
	}
	return d.batchWrite(ctx, "delete many", reqs)
}

// SaveMany writes many records with BatchWriteItem (25 per request, retrying
// unprocessed items), applying the same validation and defaults as Save.
// Ids must be distinct within one call. Seeding and tests use it; the
// handlers save one record per $connect.
func (d *Dynamo) SaveMany(ctx context.Context, conns []Connection) error {
	reqs := make([]types.WriteRequest, len(conns))
	seen := make(map[string]struct{}, len(conns))
	for i, c := range conns {
		if err := Validate(c); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if _, dup := seen[c.ConnectionID]; dup {
			return invalid("connection_id", "%q appears more than once in one SaveMany call", c.ConnectionID)
		}
		seen[c.ConnectionID] = struct{}{}
		reqs[i] = types.WriteRequest{PutRequest: &types.PutRequest{Item: MarshalItem(d.withDefaults(c))}}
	}
	return d.batchWrite(ctx, "save many", reqs)
}

func (d *Dynamo) batchWrite(ctx context.Context, op string, reqs []types.WriteRequest) error {
	var (
		mu   sync.Mutex
		left int
	)
	err := parallel(ctx, chunks(len(reqs), BatchWriteLimit), d.workers, func(ctx context.Context, i int) error {
		batch := map[string][]types.WriteRequest{d.table: reqs[i*BatchWriteLimit : min((i+1)*BatchWriteLimit, len(reqs))]}
		n, err := d.retryUnprocessed(ctx, op, "items", func() (int, error) {
			out, err := d.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: batch})
			if err != nil {
				return 0, d.wrapErr(op, fmt.Sprintf("(%d items)", len(batch[d.table])), err)
			}
			batch = out.UnprocessedItems
			return len(batch[d.table]), nil
		})
		mu.Lock()
		left += n
		mu.Unlock()
		return err
	})
	if err == nil && left > 0 {
		return fmt.Errorf("store: %s: %w", op, &UnprocessedError{Op: "BatchWriteItem", Remaining: left, Attempts: d.attempts})
	}
	return err
}
