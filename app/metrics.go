package app

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/statefun-go/statefun/dataflow/runtime"
	"github.com/statefun-go/statefun/metrics"
)

// engineCollector reads the engine's own counters at scrape time: records
// per vertex, function invocations and checkpoints of the running attempt.
type engineCollector struct {
	mu   sync.Mutex
	job  *runtime.Job
	prep *Prepared
	drv  *driver
}

var (
	collector = &engineCollector{}

	descRecordsIn   = prometheus.NewDesc("statefun_vertex_records_in_total", "Records received by the subtasks of a vertex (this attempt).", []string{"vertex"}, nil)
	descRecordsOut  = prometheus.NewDesc("statefun_vertex_records_out_total", "Records emitted by the subtasks of a vertex (this attempt).", []string{"vertex"}, nil)
	descCheckpoints = prometheus.NewDesc("statefun_checkpoints_total", "Checkpoints by outcome (this attempt).", []string{"outcome"}, nil)
	descCkptLast    = prometheus.NewDesc("statefun_checkpoint_last_duration_seconds", "Duration of the last completed checkpoint.", nil, nil)
	descLive        = prometheus.NewDesc("statefun_live_messages", "Messages queued, in flight or delayed in the function subtasks.", nil, nil)
)

func init() { _ = metrics.Register(collector) }

func (c *engineCollector) set(job *runtime.Job, p *Prepared, d *driver) {
	c.mu.Lock()
	c.job, c.prep, c.drv = job, p, d
	c.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRecordsIn, descRecordsOut, descCheckpoints, descCkptLast, descLive} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	job, p, d := c.job, c.prep, c.drv
	c.mu.Unlock()
	if job == nil {
		return
	}
	for _, m := range job.Metrics() {
		ch <- prometheus.MustNewConstMetric(descRecordsIn, prometheus.CounterValue, float64(m.RecordsIn), m.Vertex)
		ch <- prometheus.MustNewConstMetric(descRecordsOut, prometheus.CounterValue, float64(m.RecordsOut), m.Vertex)
	}
	if p != nil {
		ch <- prometheus.MustNewConstMetric(descLive, prometheus.GaugeValue, float64(p.Job.Quiescence.Live()))
	}
	if d != nil {
		st := d.stats()
		ch <- prometheus.MustNewConstMetric(descCheckpoints, prometheus.CounterValue, float64(st.Completed), "completed")
		ch <- prometheus.MustNewConstMetric(descCheckpoints, prometheus.CounterValue, float64(st.Aborted), "aborted")
		ch <- prometheus.MustNewConstMetric(descCkptLast, prometheus.GaugeValue, st.LastDuration.Seconds())
	}
}
