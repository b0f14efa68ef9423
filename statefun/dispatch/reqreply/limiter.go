package reqreply

import "time"

// Limiter adapts MaxInFlight to the function server, TCP-Vegas style (as
// Netflix's concurrency-limits): from the shortest round trip seen (no
// queueing) and the current one, it estimates how many requests are queued
// at the server, queue = limit * (1 - minRTT/rtt). Below Alpha the limit
// grows by one, above Beta it shrinks by one.
//
// A CPU-bound server (a function on the same machine) queues requests as
// soon as its cores are busy, so the limit settles low and batches grow; a
// server whose latency is I/O (a database call) does not queue, so the
// limit grows to Max and many addresses are served at once.
//
// Deterministic: round trips are passed in.
type Limiter struct {
	Min, Max     int
	Alpha, Beta  float64
	limit        float64
	minRTT       time.Duration
	windowMin    time.Duration
	samples      int
	ResetSamples int // minRTT is re-learned from the last window every ResetSamples samples
}

// NewLimiter returns a limiter starting at initial, within [min, max].
func NewLimiter(initial, min, max int) *Limiter {
	if max < min {
		max = min
	}
	l := &Limiter{Min: min, Max: max, Alpha: 3, Beta: 6, ResetSamples: 1000, limit: float64(initial)}
	l.clamp()
	return l
}

// Limit returns the current limit.
func (l *Limiter) Limit() int { return int(l.limit) }

// Observe records one round trip and adapts the limit.
func (l *Limiter) Observe(rtt time.Duration) int {
	if rtt <= 0 {
		rtt = time.Microsecond
	}
	if l.minRTT == 0 || rtt < l.minRTT {
		l.minRTT = rtt
	}
	if l.windowMin == 0 || rtt < l.windowMin {
		l.windowMin = rtt
	}
	l.samples++
	if l.samples%l.ResetSamples == 0 {
		// Re-learn the floor: the server may have become slower for good.
		l.minRTT, l.windowMin = l.windowMin, 0
	}
	queue := l.limit * (1 - float64(l.minRTT)/float64(rtt))
	switch {
	case queue < l.Alpha:
		l.limit++
	case queue > l.Beta:
		l.limit--
	}
	l.clamp()
	return int(l.limit)
}

func (l *Limiter) clamp() {
	if l.limit < float64(l.Min) {
		l.limit = float64(l.Min)
	}
	if l.limit > float64(l.Max) {
		l.limit = float64(l.Max)
	}
}
