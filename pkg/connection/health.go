package connection

import (
	"container/list"
	"sync"
	"sync/atomic"
	"time"
)

// health remembers consecutive delivery failures of connections that are
// currently failing, in an LRU bounded by MaxTracked: healthy connections
// take no memory, and a flood of distinct failing ids evicts the oldest.
type health struct {
	cfg   HealthConfig
	mu    sync.Mutex
	ll    *list.List // front = most recently failed
	index map[string]*list.Element
	sick  int // entries at or over the threshold
	// n mirrors ll.Len() so the common case, no failing connection at all,
	// costs a broadcast no lock per target.
	n atomic.Int64
}

type healthEntry struct {
	id       string
	failures int
	lastFail time.Time
	probing  bool
}

// admission is health's verdict on one delivery.
type admission int

const (
	admitNormal admission = iota // healthy: full retry policy
	admitProbe                   // unhealthy, cooldown passed: one attempt
	admitSkip                    // unhealthy, cooling down (or a probe is out)
)

func newHealth(cfg HealthConfig) *health {
	return &health{cfg: cfg, ll: list.New(), index: make(map[string]*list.Element)}
}

func (h *health) admit(id string, now time.Time) admission {
	if h.n.Load() == 0 {
		return admitNormal
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.index[id]
	if !ok {
		return admitNormal
	}
	e := el.Value.(*healthEntry)
	if e.failures < h.cfg.FailureThreshold {
		return admitNormal
	}
	if e.probing || now.Sub(e.lastFail) < h.cfg.Cooldown {
		return admitSkip
	}
	e.probing = true
	return admitProbe
}

// success forgets the connection: it is healthy again.
func (h *health) success(id string) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if el, ok := h.index[id]; ok {
		h.remove(el)
	}
}

func (h *health) remove(el *list.Element) {
	e := el.Value.(*healthEntry)
	if e.failures >= h.cfg.FailureThreshold {
		h.sick--
	}
	h.ll.Remove(el)
	delete(h.index, e.id)
	h.n.Add(-1)
}

// forget is success for connections that are gone for good.
func (h *health) forget(id string) { h.success(id) }

// failure counts one failed delivery and reports whether the connection
// just became unhealthy.
func (h *health) failure(id string, now time.Time) (becameUnhealthy bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.index[id]
	if !ok {
		el = h.ll.PushFront(&healthEntry{id: id})
		h.index[id] = el
		h.n.Add(1)
		for h.ll.Len() > h.cfg.MaxTracked {
			h.remove(h.ll.Back())
		}
	} else {
		h.ll.MoveToFront(el)
	}
	e := el.Value.(*healthEntry)
	e.failures++
	e.lastFail = now
	e.probing = false
	if e.failures == h.cfg.FailureThreshold {
		h.sick++
		return true
	}
	return false
}

// release returns an unused probe slot (the probe was cancelled).
func (h *health) release(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if el, ok := h.index[id]; ok {
		el.Value.(*healthEntry).probing = false
	}
}

func (h *health) unhealthy() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sick
}

func (h *health) tracked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ll.Len()
}
