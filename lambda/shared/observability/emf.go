package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pay-theory/streamer/contract"
)

// Unit is a CloudWatch metric unit.
type Unit string

// Units used by the handlers.
const (
	UnitCount Unit = "Count"
	UnitNone  Unit = "None"
)

// Metric is one value of one metric.
type Metric struct {
	Name  string
	Unit  Unit
	Value float64
}

// Count is a Count metric.
func Count(name string, v float64) Metric { return Metric{Name: name, Unit: UnitCount, Value: v} }

// Gauge is a Count-unit metric holding a current level (ActiveConnections):
// read it with the Maximum or Average statistic, not Sum.
func Gauge(name string, v int64) Metric {
	return Metric{Name: name, Unit: UnitCount, Value: float64(v)}
}

// EMFConfig configures NewEMF. The zero value writes to stdout in namespace
// contract.DefaultMetricsNamespace with Environment "dev".
type EMFConfig struct {
	// Writer receives one JSON document per line; nil means os.Stdout (Lambda
	// sends stdout to CloudWatch Logs, which extracts the metrics).
	Writer io.Writer
	// Namespace: METRICS_NAMESPACE; "" means contract.DefaultMetricsNamespace.
	Namespace string
	// Environment: ENVIRONMENT, the only dimension; "" means "dev".
	Environment string
	// Function is written as a property (searchable in Logs Insights) but is
	// not a dimension, so it adds no metric cardinality.
	Function string
	// Now is the clock for the document timestamp; nil means time.Now.
	Now func() time.Time
}

// DefaultEnvironment is the Environment dimension when ENVIRONMENT is unset.
const DefaultEnvironment = "dev"

// EMF writes CloudWatch Embedded Metric Format documents. CloudWatch turns
// each document into metric values with no API call in the request path.
type EMF struct {
	mu  sync.Mutex
	w   io.Writer
	cfg EMFConfig
}

// NewEMF returns an EMF writer.
func NewEMF(cfg EMFConfig) *EMF {
	if cfg.Writer == nil {
		cfg.Writer = os.Stdout
	}
	if cfg.Namespace == "" {
		cfg.Namespace = contract.DefaultMetricsNamespace
	}
	if cfg.Environment == "" {
		cfg.Environment = DefaultEnvironment
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &EMF{w: cfg.Writer, cfg: cfg}
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit Unit   `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// Emit writes one document holding metrics (one metric set) plus props as
// extra properties, which are searchable in the log but are not dimensions:
// never make a tenant or user id a dimension. The invocation's correlation id
// is added as a property when ctx carries one. Emitting nothing is a no-op.
func (e *EMF) Emit(ctx context.Context, metrics []Metric, props map[string]any) error {
	if len(metrics) == 0 {
		return nil
	}
	doc := make(map[string]any, len(metrics)+len(props)+4)
	for k, v := range props {
		doc[k] = v
	}
	if inv := FromContext(ctx); inv != nil {
		if id := inv.Fields().CorrelationID; id != "" {
			doc[KeyCorrelationID] = id
		}
	}
	if e.cfg.Function != "" {
		doc["Function"] = e.cfg.Function
	}
	doc[contract.DimensionEnvironment] = e.cfg.Environment
	dir := emfDirective{
		Namespace:  e.cfg.Namespace,
		Dimensions: [][]string{{contract.DimensionEnvironment}},
	}
	for _, m := range metrics {
		if m.Name == "" || m.Name == "_aws" {
			return fmt.Errorf("emf: invalid metric name %q", m.Name)
		}
		unit := m.Unit
		if unit == "" {
			unit = UnitNone
		}
		dir.Metrics = append(dir.Metrics, emfMetric{Name: m.Name, Unit: unit})
		doc[m.Name] = m.Value
	}
	doc["_aws"] = emfMeta{Timestamp: e.cfg.Now().UnixMilli(), CloudWatchMetrics: []emfDirective{dir}}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("emf: encode metrics: %w", err)
	}
	b = append(b, '\n')
	e.mu.Lock()
	defer e.mu.Unlock()
	// One Write per document so lines from concurrent invocations in the same
	// process (streamer local) never interleave.
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("emf: write metrics: %w", err)
	}
	return nil
}
