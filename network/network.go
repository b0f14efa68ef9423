package network

import (
	"context"
	"sync"

	"github.com/statefun-go/statefun/dataflow"
)

// DefaultBufferRecords is the default number of records per buffer.
const DefaultBufferRecords = 512

// DefaultCredits is the default number of credits (buffers in flight) per
// channel.
const DefaultCredits = 4

// Buffer is a batch of records, optionally followed by one event.
type Buffer struct {
	Records []dataflow.Record
	Event   dataflow.Event
}

var pool = sync.Pool{New: func() any { return &Buffer{Records: make([]dataflow.Record, 0, DefaultBufferRecords)} }}

// GetBuffer returns an empty buffer from the pool.
func GetBuffer() *Buffer { return pool.Get().(*Buffer) }

// PutBuffer recycles b. The caller must not use b afterwards.
func PutBuffer(b *Buffer) {
	clear(b.Records) // drop references to record values
	b.Records = b.Records[:0]
	b.Event = dataflow.Event{}
	pool.Put(b)
}

// Sender is the producer end of a channel.
type Sender interface {
	// Send hands b to the consumer, blocking while there is no credit. The
	// receiver owns b afterwards. It returns dataflow.ErrClosed when ctx is
	// done first.
	Send(ctx context.Context, b *Buffer) error
}

// Delivery is one buffer received on channel Channel of a gate.
type Delivery struct {
	Channel int
	Buf     *Buffer
}

// Gate is the consumer end of all channels into one subtask.
type Gate struct {
	deliveries chan Delivery
	channels   []*Channel
}

// NewGate returns a gate with n channels of `credits` credits each.
func NewGate(n, credits int) *Gate {
	if credits < 1 {
		credits = DefaultCredits
	}
	g := &Gate{deliveries: make(chan Delivery, n*credits)}
	for i := 0; i < n; i++ {
		c := &Channel{gate: g, index: i, credits: make(chan struct{}, credits)}
		for j := 0; j < credits; j++ {
			c.credits <- struct{}{}
		}
		g.channels = append(g.channels, c)
	}
	return g
}

// NumChannels returns the number of channels.
func (g *Gate) NumChannels() int { return len(g.channels) }

// Channel returns channel i, the Sender a producer uses.
func (g *Gate) Channel(i int) *Channel { return g.channels[i] }

// C is the stream of deliveries, in per-channel send order.
func (g *Gate) C() <-chan Delivery { return g.deliveries }

// Release returns the credit of a processed delivery and recycles its
// buffer.
func (g *Gate) Release(d Delivery) {
	PutBuffer(d.Buf)
	g.channels[d.Channel].credits <- struct{}{}
}

// Channel is one local producer->consumer channel.
type Channel struct {
	gate    *Gate
	index   int
	credits chan struct{}
}

// Send implements Sender.
func (c *Channel) Send(ctx context.Context, b *Buffer) error {
	select {
	case <-c.credits:
	default:
		select {
		case <-c.credits:
		case <-ctx.Done():
			return dataflow.ErrClosed
		}
	}
	c.gate.deliveries <- Delivery{Channel: c.index, Buf: b}
	return nil
}

// Credits returns the credits currently available to the producer.
func (c *Channel) Credits() int { return len(c.credits) }
