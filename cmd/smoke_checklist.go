package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pay-theory/streamer/pkg/store"
)

// Step statuses.
const (
	StepPass = "pass"
	StepFail = "fail"
	StepSkip = "skip"
)

// StepResult is one checklist line.
type StepResult struct {
	Name     string        `json:"name"`
	Status   string        `json:"status"`
	Duration time.Duration `json:"-"`
	MS       float64       `json:"duration_ms"`
	Detail   string        `json:"detail"`
	Error    string        `json:"error"`
}

// smokeJSON is the documented -o json form of smoke.
type smokeJSON struct {
	DurationMS float64      `json:"duration_ms"`
	Passed     bool         `json:"passed"`
	Steps      []StepResult `json:"steps"`
}

// smokeStep is a step of the checklist; it runs only when every step in
// needs (names of earlier steps) passed.
type smokeStep struct {
	name  string
	needs []string
	run   func(ctx context.Context) (detail string, err error)
}

// checkSteps refuses a checklist where a step needs one that does not run
// before it: such a step would be skipped on every run.
func checkSteps(steps []smokeStep) error {
	earlier := map[string]bool{}
	for _, s := range steps {
		for _, n := range s.needs {
			if !earlier[n] {
				return fmt.Errorf("smoke: step %q needs %q, which is not an earlier step", s.name, n)
			}
		}
		earlier[s.name] = true
	}
	return nil
}

// runChecklist runs steps in order, printing each as it finishes (JSON at
// the end), and returns ErrPartial unless every step passed.
func runChecklist(ctx context.Context, f *Factory, format string, steps []smokeStep) error {
	if err := checkSteps(steps); err != nil {
		return err
	}
	p := newPalette(f.IO.OutTTY, f.Getenv)
	passed := map[string]bool{}
	var results []StepResult
	var unchecked error // the first failure that says the stack could not be checked
	start := f.Now()
	width := 0
	for _, s := range steps {
		width = max(width, len(s.name))
	}
	for _, s := range steps {
		r := StepResult{Name: s.name, Status: StepPass}
		var missing []string
		for _, n := range s.needs {
			if !passed[n] {
				missing = append(missing, n)
			}
		}
		switch {
		case ctx.Err() != nil:
			r.Status, r.Error = StepSkip, "cancelled"
		case len(missing) > 0:
			r.Status, r.Detail = StepSkip, "needs "+strings.Join(missing, ", ")
		default:
			t0 := f.Now()
			detail, err := s.run(ctx)
			r.Duration = f.Now().Sub(t0)
			r.Detail = redactText(detail)
			if err != nil {
				r.Status, r.Error = StepFail, userText(err.Error())
				if unchecked == nil && cannotCheck(err) {
					unchecked = err
				}
			}
		}
		r.MS = float64(r.Duration.Microseconds()) / 1000
		passed[s.name] = r.Status == StepPass
		results = append(results, r)
		switch format {
		case FormatJSON:
		case FormatPlain:
			// Details and errors may quote what the stack answered
			// (a stored id, a service's message): escaped.
			fmt.Fprintf(f.IO.Out, "%s\t%s\t%.1f\t%s\n", r.Status, r.Name, r.MS, sanitizeCells([]string{terminalLines(firstNonEmpty(r.Error, r.Detail))})[0])
		default:
			mark := p.Green("✓")
			switch r.Status {
			case StepFail:
				mark = p.Red("✗")
			case StepSkip:
				mark = p.Yellow("-")
			}
			line := fmt.Sprintf("%s %-*s %9s", mark, width, r.Name, formatDuration(r.Duration))
			if r.Status == StepSkip {
				line = fmt.Sprintf("%s %-*s %9s", mark, width, r.Name, "skipped")
			}
			if d := terminalLines(firstNonEmpty(r.Error, r.Detail)); d != "" {
				if r.Status == StepFail {
					d = p.Red(d)
				}
				line += "  " + d
			}
			fmt.Fprintln(f.IO.Out, line)
		}
	}
	total := f.Now().Sub(start)
	ok := 0
	for _, r := range results {
		if r.Status == StepPass {
			ok++
		}
	}
	allPassed := ok == len(results)
	switch format {
	case FormatJSON:
		if err := writeJSON(f.IO.Out, smokeJSON{DurationMS: float64(total.Microseconds()) / 1000, Passed: allPassed, Steps: results}); err != nil {
			return err
		}
	default:
		verdict := p.Green("PASS")
		if !allPassed {
			verdict = p.Red("FAIL")
		}
		fmt.Fprintf(f.IO.ErrOut, "%s: %d/%d steps passed in %s\n", verdict, ok, len(results), formatDuration(total))
	}
	if unchecked != nil {
		return fmt.Errorf("smoke could not check the stack: %w", unchecked)
	}
	if !allPassed {
		return fmt.Errorf("%w: smoke: %d of %d steps did not pass", ErrPartial, len(results)-ok, len(results))
	}
	return nil
}

// cannotCheck reports whether a step's failure is the run's, not the
// stack's: an endpoint that does not answer, a table that does not exist.
// Smoke then exits 1 (an error), not 3 (a stack that fails a step).
func cannotCheck(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue) || errors.Is(err, store.ErrTableNotFound)
}
