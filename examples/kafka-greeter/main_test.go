package main

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

// TestKafkaGreeter runs the example's module.yaml (pointed at an in-process
// kfake broker) and checks every greeting on the read_committed output.
func TestKafkaGreeter(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopics(ctx, 2, 1, nil, "names", "greetings"); err != nil {
		t.Fatal(err)
	}
	names := []string{"alice", "bob", "alice", "carol", "alice"}
	for _, n := range names {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "names", Key: []byte(n), Value: []byte(n)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	mod, err := os.ReadFile("module.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "module.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(mod), "127.0.0.1:19092", addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := app.Run(runCtx, app.Config{
			Modules: []string{path}, StateDir: filepath.Join(dir, "state"), CheckpointInterval: 100 * time.Millisecond,
			Functions: []statefun.StatefulFunctionSpec{{FunctionType: GreeterType, States: []statefun.ValueSpec{seen}, Function: statefun.StatefulFunctionPointer(greeter)}},
		})
		done <- err
	}()
	consumer, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("greetings"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var got []string
	for len(got) < len(names) {
		fs := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d greetings: %v", len(got), len(names), got)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Key)+": "+string(r.Value)) })
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	want := []string{
		"alice: Hello alice! I have seen you 2 times.",
		"alice: Hello alice! I have seen you 3 times.",
		"alice: Hello alice! Welcome!",
		"bob: Hello bob! Welcome!",
		"carol: Hello carol! Welcome!",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("greetings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
