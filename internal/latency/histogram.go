// Package latency is a lock-free log-linear latency histogram shared by the
// connection Manager's metrics and the local gateway's /metrics endpoints.
package latency

import (
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Histogram records durations in nanoseconds into log-linear buckets: each
// power of two is split into 16 sub-buckets (values below 16 ns are exact),
// so a bucket is at most 1/16 (6.25%) of its lower bound wide and a reported
// quantile — the bucket midpoint, capped at the maximum recorded — is within
// 1/32 (~3.1%) of the value it stands for. The counters are striped over
// shards so concurrent recorders rarely share a cache line. Record is O(1);
// Snapshot scans a fixed number of buckets. The zero value is ready to use.
type Histogram struct {
	shards [shards]shard
}

const (
	subBits = 4
	sub     = 1 << subBits
	buckets = (64 - subBits + 1) * sub
	shards  = 8
)

type shard struct {
	counts [buckets]atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
	_      [64]byte
}

// Snapshot summarises a Histogram. Quantiles use the nearest-rank method
// over bucket midpoints; all fields are zero when nothing was recorded.
type Snapshot struct {
	Count         uint64
	Sum           time.Duration
	Mean          time.Duration
	Max           time.Duration
	P50, P90, P99 time.Duration
}

func bucketOf(v uint64) int {
	if v < sub {
		return int(v)
	}
	exp := bits.Len64(v) - 1 // ≥ subBits
	mant := (v >> (exp - subBits)) & (sub - 1)
	return (exp-subBits+1)*sub + int(mant)
}

// bucketRange returns [lo, hi) of a bucket; hi is 0 (wrapped) for the last.
func bucketRange(i int) (lo, hi uint64) {
	if i < sub {
		return uint64(i), uint64(i) + 1
	}
	exp := i/sub + subBits - 1
	mant := uint64(i % sub)
	width := uint64(1) << (exp - subBits)
	lo = (sub + mant) << (exp - subBits)
	return lo, lo + width
}

// bucketMid is the value reported for bucket i: its midpoint.
func bucketMid(i int) uint64 {
	lo, hi := bucketRange(i)
	return lo + (hi-lo)/2
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	v := uint64(d)
	s := &h.shards[rand.Uint32()%shards]
	s.counts[bucketOf(v)].Add(1)
	s.sum.Add(v)
	for {
		m := s.max.Load()
		if v <= m || s.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// Snapshot returns the count, sum, mean, maximum and p50/p90/p99 so far.
func (h *Histogram) Snapshot() Snapshot {
	var counts [buckets]uint64
	var total, sum, max uint64
	for i := range h.shards {
		s := &h.shards[i]
		for b := range counts {
			c := s.counts[b].Load()
			counts[b] += c
			total += c
		}
		sum += s.sum.Load()
		if m := s.max.Load(); m > max {
			max = m
		}
	}
	out := Snapshot{Count: total, Sum: time.Duration(sum), Max: time.Duration(max)}
	if total == 0 {
		return out
	}
	out.Mean = time.Duration(sum / total)
	q := func(p float64) time.Duration {
		// Nearest rank: ceil(p × total), tolerant of float rounding.
		rank := uint64(p*float64(total) + 0.999999)
		if rank < 1 {
			rank = 1
		}
		var seen uint64
		for b, c := range counts {
			seen += c
			if seen >= rank {
				return time.Duration(min(bucketMid(b), max))
			}
		}
		return time.Duration(max)
	}
	out.P50, out.P90, out.P99 = q(0.50), q(0.90), q(0.99)
	return out
}
