package cmd

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progressThreshold: fan-outs smaller than this finish too fast for a bar.
const progressThreshold = 50

// progressBar draws "label [=====>    ] 1234/10000  12%" on one terminal
// line, redrawn with \r at most every 100 ms. Update is safe to call from
// several goroutines.
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	label string
	last  time.Time
	done  int
	total int
	more  bool // the total is still growing (a listing is under way)
	drawn bool
}

func newProgressBar(w io.Writer, now func() time.Time, label string) *progressBar {
	return &progressBar{w: w, now: now, label: label}
}

const progressWidth = 30

// Update records progress and redraws when due (always at completion).
func (b *progressBar) Update(done, total int) { b.UpdateListing(done, total, false) }

// UpdateListing is Update for a total that may still grow (more): the bar
// then reads "done/total+".
func (b *progressBar) UpdateListing(done, total int, more bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if done < b.done {
		return // callbacks may arrive out of order
	}
	b.done, b.total, b.more = done, total, more
	t := b.now()
	if done < total && b.drawn && t.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = t
	b.draw()
}

func (b *progressBar) draw() {
	if b.total <= 0 {
		return
	}
	filled := b.done * progressWidth / b.total
	bar := strings.Repeat("=", filled)
	if filled < progressWidth {
		bar += ">" + strings.Repeat(" ", progressWidth-filled-1)
	}
	plus := ""
	if b.more {
		plus = "+"
	}
	fmt.Fprintf(b.w, "\r%s [%s] %d/%d%s %3d%%", b.label, bar, b.done, b.total, plus, b.done*100/b.total)
	b.drawn = true
}

// Done draws the final state and ends the line.
func (b *progressBar) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		b.draw()
		fmt.Fprintln(b.w)
	}
}
