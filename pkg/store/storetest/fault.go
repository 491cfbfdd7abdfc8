package storetest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/pay-theory/streamer/pkg/store"
)

// FaultClient wraps a real client. For the first WriteFaults BatchWriteItem
// calls (GetFaults BatchGetItem calls) it forwards only the first half of
// each request and hands the rest back as UnprocessedItems (UnprocessedKeys),
// as DynamoDB does under throttling. A negative count means every call.
// It also counts calls and the most UpdateItem calls in flight at once.
type FaultClient struct {
	store.DynamoAPI
	WriteFaults, GetFaults int

	mu             sync.Mutex
	writeCalls     int
	getCalls       int
	maxKeysPerGet  int
	maxItemsPerPut int

	updates, inFlight, maxInFlight atomic.Int64
}

// fault reports whether call n (1-based) of a kind should be faulted.
func fault(n, limit int) bool { return limit < 0 || n <= limit }

// BatchWriteItem implements store.DynamoAPI.
func (f *FaultClient) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opt ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error) {
	f.mu.Lock()
	f.writeCalls++
	n := f.writeCalls
	for _, reqs := range in.RequestItems {
		f.maxItemsPerPut = max(f.maxItemsPerPut, len(reqs))
	}
	f.mu.Unlock()
	if !fault(n, f.WriteFaults) {
		return f.DynamoAPI.BatchWriteItem(ctx, in, opt...)
	}
	send := map[string][]types.WriteRequest{}
	back := map[string][]types.WriteRequest{}
	for table, reqs := range in.RequestItems {
		half := len(reqs) / 2
		if f.WriteFaults < 0 {
			half = 0
		}
		if half > 0 {
			send[table] = reqs[:half]
		}
		back[table] = reqs[half:]
	}
	if len(send) > 0 {
		if _, err := f.DynamoAPI.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: send}, opt...); err != nil {
			return nil, err
		}
	}
	return &dynamodb.BatchWriteItemOutput{UnprocessedItems: back}, nil
}

// BatchGetItem implements store.DynamoAPI.
func (f *FaultClient) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opt ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	f.mu.Lock()
	f.getCalls++
	n := f.getCalls
	for _, ka := range in.RequestItems {
		f.maxKeysPerGet = max(f.maxKeysPerGet, len(ka.Keys))
	}
	f.mu.Unlock()
	if !fault(n, f.GetFaults) {
		return f.DynamoAPI.BatchGetItem(ctx, in, opt...)
	}
	send := map[string]types.KeysAndAttributes{}
	back := map[string]types.KeysAndAttributes{}
	for table, ka := range in.RequestItems {
		half := len(ka.Keys) / 2
		if f.GetFaults < 0 {
			half = 0
		}
		first, rest := ka, ka
		first.Keys, rest.Keys = ka.Keys[:half], ka.Keys[half:]
		if half > 0 {
			send[table] = first
		}
		back[table] = rest
	}
	out := &dynamodb.BatchGetItemOutput{UnprocessedKeys: back}
	if len(send) > 0 {
		got, err := f.DynamoAPI.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: send}, opt...)
		if err != nil {
			return nil, err
		}
		out.Responses = got.Responses
	}
	return out, nil
}

// UpdateItem implements store.DynamoAPI, counting calls and concurrency.
func (f *FaultClient) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opt ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	f.updates.Add(1)
	cur := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if cur <= m || f.maxInFlight.CompareAndSwap(m, cur) {
			break
		}
	}
	return f.DynamoAPI.UpdateItem(ctx, in, opt...)
}

// Calls returns the BatchWriteItem and BatchGetItem calls made so far.
func (f *FaultClient) Calls() (writes, gets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeCalls, f.getCalls
}

// Scan forwards to the wrapped client when it can Scan (store.ScanAPI), so
// whole-table listings work through a FaultClient too.
func (f *FaultClient) Scan(ctx context.Context, in *dynamodb.ScanInput, opt ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	sc, ok := f.DynamoAPI.(store.ScanAPI)
	if !ok {
		return nil, errors.New("storetest: the wrapped client cannot Scan")
	}
	return sc.Scan(ctx, in, opt...)
}
