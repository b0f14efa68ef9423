package reqreply

import (
	"testing"
	"time"
)

// A server with c cores and service time s: with n requests in flight the
// round trip is s * max(1, n/c) (queueing once the cores are busy).
func cpuBound(n int) time.Duration {
	const cores, service = 2, 100 * time.Microsecond
	if n <= cores {
		return service
	}
	return service * time.Duration(n) / cores
}

func TestLimiterSettlesLowForACPUBoundServer(t *testing.T) {
	l := NewLimiter(4, 2, 1024)
	for i := 0; i < 5000; i++ {
		l.Observe(cpuBound(l.Limit()))
	}
	if got := l.Limit(); got < 2 || got > 24 {
		t.Fatalf("limit %d, want a small limit (cores + a few queued)", got)
	}
}

func TestLimiterGrowsForAnIOBoundServer(t *testing.T) {
	l := NewLimiter(16, 2, 1024)
	for i := 0; i < 5000; i++ {
		l.Observe(50 * time.Millisecond) // latency independent of load
	}
	if got := l.Limit(); got != 1024 {
		t.Fatalf("limit %d, want the maximum", got)
	}
}

func TestLimiterRelearnsASlowerServer(t *testing.T) {
	l := NewLimiter(64, 2, 1024)
	for i := 0; i < 2000; i++ {
		l.Observe(time.Millisecond)
	}
	// The server becomes 10x slower for good but does not queue.
	for i := 0; i < 5000; i++ {
		l.Observe(10 * time.Millisecond)
	}
	if got := l.Limit(); got != 1024 {
		t.Fatalf("limit %d after the server slowed down, want it to recover to the maximum", got)
	}
}
