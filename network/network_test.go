package network

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
)

func buf(vals ...int) *Buffer {
	b := GetBuffer()
	for _, v := range vals {
		b.Records = append(b.Records, dataflow.Record{Value: v})
	}
	return b
}

func TestCreditsBoundTheProducer(t *testing.T) {
	g := NewGate(2, 2)
	ctx := context.Background()
	c0 := g.Channel(0)
	for i := 0; i < 2; i++ {
		if err := c0.Send(ctx, buf(i)); err != nil {
			t.Fatal(err)
		}
	}
	if c0.Credits() != 0 {
		t.Fatalf("credits %d, want 0", c0.Credits())
	}
	// A third send must block until the consumer releases one buffer.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c0.Send(cctx, buf(2)); !errors.Is(err, dataflow.ErrClosed) {
		t.Fatalf("send without credit: %v, want ErrClosed", err)
	}
	// The other channel is unaffected.
	if err := g.Channel(1).Send(ctx, buf(9)); err != nil {
		t.Fatal(err)
	}
	d := <-g.C()
	if d.Channel != 0 || d.Buf.Records[0].Value != 0 {
		t.Fatalf("first delivery %+v", d)
	}
	g.Release(d)
	if c0.Credits() != 1 {
		t.Fatalf("credits after release %d, want 1", c0.Credits())
	}
}

func TestPerChannelOrderUnderConcurrency(t *testing.T) {
	const producers, perProducer = 4, 5000
	g := NewGate(producers, 2)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			for i := 0; i < perProducer; i += 10 {
				b := GetBuffer()
				for j := i; j < i+10; j++ {
					b.Records = append(b.Records, dataflow.Record{Value: j})
				}
				if i+10 >= perProducer {
					b.Event = dataflow.Event{Kind: dataflow.EventEndOfInput}
				}
				if err := g.Channel(p).Send(context.Background(), b); err != nil {
					t.Error(err)
					return
				}
			}
		}(p)
	}
	next := make([]int, producers)
	ended := 0
	for ended < producers {
		d := <-g.C()
		for _, r := range d.Buf.Records {
			if r.Value.(int) != next[d.Channel] {
				t.Fatalf("channel %d: got %d want %d", d.Channel, r.Value, next[d.Channel])
			}
			next[d.Channel]++
		}
		if d.Buf.Event.Kind == dataflow.EventEndOfInput {
			ended++
		}
		g.Release(d)
	}
	wg.Wait()
	for p, n := range next {
		if n != perProducer {
			t.Fatalf("channel %d delivered %d of %d", p, n, perProducer)
		}
	}
}

func BenchmarkChannel(b *testing.B) {
	g := NewGate(1, DefaultCredits)
	done := make(chan struct{})
	go func() {
		for d := range g.C() {
			if d.Buf.Event.Kind == dataflow.EventEndOfInput {
				g.Release(d)
				close(done)
				return
			}
			g.Release(d)
		}
	}()
	b.ReportAllocs()
	ctx := context.Background()
	n := 0
	for b.Loop() {
		bf := GetBuffer()
		bf.Records = append(bf.Records, make([]dataflow.Record, DefaultBufferRecords)...)
		_ = g.Channel(0).Send(ctx, bf)
		n += DefaultBufferRecords
	}
	end := GetBuffer()
	end.Event.Kind = dataflow.EventEndOfInput
	_ = g.Channel(0).Send(ctx, end)
	<-done
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
