package remote

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestBackoffSequence(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	for _, tc := range []struct {
		typ      string
		budget   time.Duration
		waits    []time.Duration
		attempts int
	}{
		// 4+8+16+32 = 60, then the 64 ms wait is capped at the 40 ms left;
		// the attempt after it (7-13 ms floor) fails with 0 left: final.
		{async, 100 * ms, []time.Duration{4 * ms, 8 * ms, 16 * ms, 32 * ms, 40 * ms}, 6},
		{async, 50 * ms, []time.Duration{4 * ms, 8 * ms, 16 * ms, 22 * ms}, 5},
		// At 1 ms or less left the async call fails without waiting.
		{async, 13 * ms, []time.Duration{4 * ms, 8 * ms}, 3},
		{async, 12500 * time.Microsecond, []time.Duration{4 * ms, 8 * ms}, 3},
		{async, 14 * ms, []time.Duration{4 * ms, 8 * ms, 2 * ms}, 4},
		// 10+20+40 = 70, then the 80 ms wait is capped at the 30 ms left,
		// after which nothing is left for another attempt.
		{okhttp, 100 * ms, []time.Duration{10 * ms, 20 * ms, 40 * ms, 30 * ms}, 4},
		{okhttp, 30 * ms, []time.Duration{10 * ms, 20 * ms}, 2},
		{okhttp, 15 * ms, []time.Duration{10 * ms, 5 * ms}, 2},
	} {
		clock := newFakeClock()
		ep := newEP(srv.URL+"/{function.name}", tc.typ, tc.budget)
		ep.Transport.Read = 10 * time.Second
		c := newClient(t, ep, Options{Now: clock.Now, Sleep: clock.Sleep})
		_, err := c.Invoke(context.Background(), "greeter", reqBody)
		ce := asCallError(t, err)
		name := tc.typ[strings.LastIndex(tc.typ, "/")+1:] + " " + tc.budget.String()
		if got := clock.Waits(); !slices.Equal(got, tc.waits) {
			t.Errorf("%s: waits %v, want %v", name, got, tc.waits)
		}
		// Status stays 500 unless every attempt timed out (very slow host).
		if ce.Attempts != tc.attempts || !ce.Final || (ce.Status != 500 && ce.Status != 0) {
			t.Errorf("%s: Attempts %d Final %v Status %d, want %d true 500", name, ce.Attempts, ce.Final, ce.Status, tc.attempts)
		}
		var sum time.Duration
		for _, w := range tc.waits {
			sum += w
		}
		if ce.Elapsed != sum || sum > tc.budget {
			t.Errorf("%s: Elapsed %v, waits sum %v, budget %v", name, ce.Elapsed, sum, tc.budget)
		}
		mustContain(t, ce.Error(), "call budget of "+tc.budget.String()+" spent after")
		if s := c.Stats(); s.Attempts != int64(tc.attempts) || s.Retries != int64(tc.attempts-1) || s.Failures != 1 {
			t.Errorf("%s: stats %+v", name, s)
		}
	}
}

// The async attempt timeout is the remaining budget, with a 7-13 ms floor.
func TestAsyncAttemptTimeoutFloor(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { block(r) }))
	clock := newFakeClock()
	// A budget of 1 ns: the single attempt still gets 7-13 ms.
	c := newClient(t, newEP(srv.URL+"/{function.name}", async, time.Nanosecond), Options{Now: clock.Now, Sleep: clock.Sleep})
	start := time.Now()
	_, err := c.Invoke(context.Background(), "greeter", reqBody)
	took := time.Since(start)
	ce := asCallError(t, err)
	if ce.Attempts != 1 || !ce.Final {
		t.Errorf("%v", ce)
	}
	mustContain(t, ce.Error(), "attempt timed out after")
	if took < 7*ms || took > 5*time.Second {
		t.Errorf("attempt took %v, want about 7-13 ms", took)
	}
}
