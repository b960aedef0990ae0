// Command pingpong is the overhead benchmark target for the tracer.
//
// Modes (one "op" each):
//
//	pingpong  one round trip of a value between main and a partner goroutine
//	          over two unbuffered channels (no goroutine creation)
//	spawn     one goroutine that exits immediately (joined per batch of 100)
//	mixed     one goroutine that does a ping-pong round trip with the
//	          spawner, then exits
//	timers    what a request handler does with timers and contexts, no
//	          goroutine: context.WithTimeout (a context and its deadline
//	          timer), time.AfterFunc, Stop, then cancel (which stops the
//	          deadline timer)
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid>
//	RESULT mode=<mode> ops=<n> seconds=<s> ops_per_sec=<x>
//
// After READY it sleeps -start-delay (so a tracer can attach), runs the
// timed work for -duration, prints RESULT and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

var (
	duration   = flag.Duration("duration", 3*time.Second, "length of the timed work")
	mode       = flag.String("mode", "mixed", "pingpong|spawn|mixed|timers")
	startDelay = flag.Duration("start-delay", 0, "sleep after READY, before the timed work")
)

// chunk is how many ops run between two deadline checks.
const chunk = 100

func main() {
	flag.Parse()

	var run func(deadline time.Time) int64
	switch *mode {
	case "pingpong":
		run = runPingPong
	case "spawn":
		run = runSpawn
	case "mixed":
		run = runMixed
	case "timers":
		run = runTimers
	default:
		fmt.Fprintf(os.Stderr, "unknown -mode %q\n", *mode)
		os.Exit(2)
	}

	fmt.Printf("READY pid=%d\n", os.Getpid())
	os.Stdout.Sync()
	time.Sleep(*startDelay)

	start := time.Now()
	ops := run(start.Add(*duration))
	secs := time.Since(start).Seconds()

	fmt.Printf("RESULT mode=%s ops=%d seconds=%.3f ops_per_sec=%.0f\n",
		*mode, ops, secs, float64(ops)/secs)
	os.Stdout.Sync()
}

// runPingPong bounces a value between main and one partner goroutine.
func runPingPong(deadline time.Time) int64 {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	defer close(ping)

	var ops int64
	for time.Now().Before(deadline) {
		for i := 0; i < chunk; i++ {
			ping <- i
			<-pong
		}
		ops += chunk
	}
	return ops
}

// runSpawn spawns goroutines that exit immediately, 100 per WaitGroup.
func runSpawn(deadline time.Time) int64 {
	var ops int64
	var wg sync.WaitGroup
	for time.Now().Before(deadline) {
		wg.Add(chunk)
		for i := 0; i < chunk; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
		ops += chunk
	}
	return ops
}

// runMixed spawns one goroutine per op that does a round trip with the
// spawner and exits.
func runMixed(deadline time.Time) int64 {
	ping, pong := make(chan int), make(chan int)
	var ops int64
	for time.Now().Before(deadline) {
		for i := 0; i < chunk; i++ {
			go func() {
				v := <-ping
				pong <- v + 1
			}()
			ping <- i
			<-pong
		}
		ops += chunk
	}
	return ops
}

// runTimers arms and disarms a context deadline and an AfterFunc per op.
func runTimers(deadline time.Time) int64 {
	var ops int64
	noop := func() {}
	for time.Now().Before(deadline) {
		for i := 0; i < chunk; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t := time.AfterFunc(time.Hour, noop)
			t.Stop()
			cancel()
			_ = ctx
		}
		ops += chunk
	}
	return ops
}
