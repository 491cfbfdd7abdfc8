package localgw

import (
	"container/heap"
	"sync"
	"time"
)

// deadlines runs every connection's idle timeout and maximum duration from
// one min-heap and one timer, instead of two runtime timers and closures
// per connection: at 100,000 idle connections that is one heap of pointers
// and a wake-up only when the earliest deadline is due.
//
// Idle deadlines are lazy: a client message does not touch the heap; when
// the idle entry comes due, it is pushed back to lastActive + IdleTimeout
// if the client was active since, and fires otherwise.
type deadlines struct {
	mu    sync.Mutex
	h     deadlineHeap
	timer *time.Timer
	armed int64 // the deadline the timer is set for; 0 when stopped
	now   func() int64
	// fire ends a connection whose deadline came; called without mu held.
	fire func(*conn)
	// idleAfter is the connection's idle deadline now, or 0 if it has been
	// active and the deadline moved (then it is pushed back).
	idleAfter func(*conn) int64
}

// deadline is one queued timeout of a connection, embedded in the conn.
type deadline struct {
	at  int64 // monotonic nanoseconds (deadlines.now's scale)
	idx int   // position in the heap; -1 when not queued
	c   *conn
	max bool // the maximum duration; else the idle timeout
}

type deadlineHeap []*deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*deadline)
	d.idx = len(*h)
	*h = append(*h, d)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.idx = -1
	return d
}

// add queues c's idle and maximum-duration deadlines.
func (ds *deadlines) add(c *conn, idleAt, maxAt int64) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	c.idleDL = deadline{at: idleAt, idx: -1, c: c}
	c.maxDL = deadline{at: maxAt, idx: -1, c: c, max: true}
	heap.Push(&ds.h, &c.idleDL)
	heap.Push(&ds.h, &c.maxDL)
	ds.rearm()
}

// remove drops c's deadlines (the connection ended some other way).
func (ds *deadlines) remove(c *conn) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	for _, d := range []*deadline{&c.idleDL, &c.maxDL} {
		if d.idx >= 0 && d.idx < len(ds.h) && ds.h[d.idx] == d {
			heap.Remove(&ds.h, d.idx)
		}
	}
	ds.rearm()
}

// stop stops the timer for good (Shutdown).
func (ds *deadlines) stop() {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.timer != nil {
		ds.timer.Stop()
	}
	ds.armed = -1
}

// rearm points the timer at the earliest deadline. Called with mu held.
func (ds *deadlines) rearm() {
	if ds.armed < 0 { // stopped
		return
	}
	if len(ds.h) == 0 {
		if ds.timer != nil && ds.armed != 0 {
			ds.timer.Stop()
		}
		ds.armed = 0
		return
	}
	next := ds.h[0].at
	if ds.armed != 0 && ds.armed <= next {
		return // already due to wake up in time (an early wake-up re-arms)
	}
	ds.armed = next
	wait := time.Duration(next - ds.now())
	if ds.timer == nil {
		ds.timer = time.AfterFunc(wait, ds.expire)
		return
	}
	ds.timer.Reset(wait)
}

// expire fires every due deadline and re-arms for the next.
func (ds *deadlines) expire() {
	var due []*conn
	ds.mu.Lock()
	if ds.armed < 0 {
		ds.mu.Unlock()
		return
	}
	ds.armed = 0
	now := ds.now()
	for len(ds.h) > 0 && ds.h[0].at <= now {
		d := heap.Pop(&ds.h).(*deadline)
		if !d.max {
			if at := ds.idleAfter(d.c); at > now {
				d.at = at
				heap.Push(&ds.h, d)
				continue
			}
		}
		due = append(due, d.c)
	}
	ds.rearm()
	ds.mu.Unlock()
	fired := make(map[*conn]bool, len(due)) // both deadlines may be due
	for _, c := range due {
		if !fired[c] {
			fired[c] = true
			ds.fire(c)
		}
	}
}
