package latency

import (
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 7, 8, 9, 15, 16, 17, 1000, 123456789, 1 << 40, 1<<63 + 12345} {
		lo, hi := bucketRange(bucketOf(v))
		if v < lo || v >= hi && hi != 0 {
			t.Errorf("%d in bucket [%d,%d)", v, lo, hi)
		}
		if v >= 16 && float64(hi-lo)/float64(lo) > 0.125 {
			t.Errorf("bucket of %d too wide: [%d,%d)", v, lo, hi)
		}
	}
}

func TestHistogramBucketsMonotonicWithMidpointError(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<20; v += 7 {
		b := bucketOf(v)
		if b < prev {
			t.Fatalf("bucketOf not monotonic at %d", v)
		}
		prev = b
		if mid := float64(bucketMid(b)); v >= 32 && math.Abs(mid-float64(v))/float64(v) > 1.0/16 {
			t.Fatalf("value %d in bucket %d with midpoint %.0f", v, b, mid)
		}
	}
	if b := bucketOf(math.MaxUint64); b >= buckets {
		t.Fatalf("max value bucket %d out of range", b)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	s := h.Snapshot()
	check := func(name string, got, want time.Duration) {
		if d := float64(got-want) / float64(want); d < -0.07 || d > 0.07 {
			t.Errorf("%s = %v, want ≈%v", name, got, want)
		}
	}
	check("p50", s.P50, 500*time.Microsecond)
	check("p90", s.P90, 900*time.Microsecond)
	check("p99", s.P99, 990*time.Microsecond)
	check("mean", s.Mean, 500*time.Microsecond)
	if s.Count != 1000 || s.Max != time.Millisecond || s.Sum != 500500*time.Microsecond {
		t.Errorf("%+v", s)
	}
	var empty Histogram
	if s := empty.Snapshot(); s.Count != 0 || s.P99 != 0 {
		t.Errorf("empty %+v", s)
	}
}

func TestHistogramQuantilesWithinBucketError(t *testing.T) {
	var h Histogram
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 0, 20000)
	for range 20000 {
		// Log-uniform between 1 µs and 1 s.
		v := time.Duration(math.Exp(r.Float64()*math.Log(1e6)) * 1e3)
		h.Record(v)
		vals = append(vals, float64(v)/1e6)
	}
	sort.Float64s(vals)
	s := h.Snapshot()
	got := []time.Duration{s.P50, s.P90, s.P99}
	for i, q := range []float64{0.5, 0.9, 0.99} {
		exact := vals[int(math.Ceil(q*float64(len(vals))))-1]
		g := float64(got[i]) / 1e6
		if rel := math.Abs(g-exact) / exact; rel > 1.0/16 {
			t.Errorf("p%v = %.4f ms, exact %.4f ms: error %.1f%% > 6.25%%", q*100, g, exact, rel*100)
		}
	}
	if s := (&Histogram{}).Snapshot(); s.P50 != 0 {
		t.Errorf("empty histogram p50 = %v", s.P50)
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10000 {
				h.Record(time.Duration(g*i) * time.Nanosecond)
				if i%1000 == 0 {
					_ = h.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	if s := h.Snapshot(); s.Count != 80000 {
		t.Errorf("count %d", s.Count)
	}
}

func BenchmarkHistogramRecordParallel(b *testing.B) {
	var h Histogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(1)
		for pb.Next() {
			h.Record(d)
			d += 997
		}
	})
}
