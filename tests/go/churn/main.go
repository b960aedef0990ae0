// Command churn spawns short-lived goroutines at a fixed rate.
//
// Every B/R seconds the main goroutine spawns a batch of B goroutines; each
// one sends a value to the spawner (so it parks and is woken) and exits.
// Two atomic counters track them: spawned is incremented right before each
// go statement, exited as the last deferred action of each goroutine.
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid>                          at start
//	COUNTS spawned=<n> exited=<n>            on each SIGUSR1
//
// SIGUSR1 pauses spawning, waits until exited == spawned and prints COUNTS
// (so the two numbers are equal and exact at that moment); SIGUSR2 resumes.
// With -paused the program starts paused (a tracer attached before SIGUSR2
// sees every goroutine it creates). SIGTERM/SIGINT exit 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	rate   = flag.Int("rate", 2000, "goroutines spawned per second")
	batch  = flag.Int("batch", 50, "goroutines spawned per tick")
	paused = flag.Bool("paused", false, "start paused until SIGUSR2")

	spawned atomic.Int64
	exited  atomic.Int64
)

// work parks on a send to the spawner, then exits.
func work(results chan<- int, i int) {
	defer exited.Add(1) // the last action of the goroutine
	results <- i * 2
}

func main() {
	flag.Parse()
	if *rate <= 0 || *batch <= 0 {
		fmt.Fprintln(os.Stderr, "-rate and -batch must be positive")
		os.Exit(2)
	}

	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)

	interval := time.Duration(float64(time.Second) * float64(*batch) / float64(*rate))
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	running := !*paused

	results := make(chan int)

	fmt.Printf("READY pid=%d\n", os.Getpid())
	os.Stdout.Sync()

	for {
		select {
		case <-ticker.C:
			if !running {
				continue
			}
			for i := 0; i < *batch; i++ {
				spawned.Add(1)
				go work(results, i)
			}
			for i := 0; i < *batch; i++ {
				<-results
			}
		case s := <-sigs:
			if s == syscall.SIGUSR2 {
				running = true
				continue
			}
			if s != syscall.SIGUSR1 {
				os.Exit(0)
			}
			running = false
			// Let in-flight goroutines run their deferred exit counter.
			for exited.Load() != spawned.Load() {
				time.Sleep(time.Millisecond)
			}
			fmt.Printf("COUNTS spawned=%d exited=%d\n", spawned.Load(), exited.Load())
			os.Stdout.Sync()
		}
	}
}
