// Command demo is the README demo target: a tiny "service" with a classic
// goroutine leak.
//
//   - Every 20ms a request arrives and is handled in its own goroutine
//     (handleRequest). The handler starts a worker (queryBackend) that sends
//     its result on an unbuffered channel, and gives up after 50ms. Every 4th
//     request hits a slow backend (120ms): its handler times out and returns,
//     and the worker stays blocked on the send forever. That leaks one
//     goroutine per timed-out request (about 12 per second).
//   - A healthy pool of 4 workers waits on a jobs channel.
//   - A ticker-driven goroutine feeds the pool a job every 100ms.
//
// Output: "READY pid=<pid>" at start, and on exit a summary line
// "EXIT requests=<n> timeouts=<n>". It runs until SIGINT/SIGTERM, or for
// -duration if that is set.
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
	duration = flag.Duration("duration", 0, "stop after this long (0 = run until SIGINT/SIGTERM)")

	requests atomic.Int64
	timeouts atomic.Int64
)

const (
	requestEvery   = 20 * time.Millisecond
	requestTimeout = 50 * time.Millisecond
	fastBackend    = 5 * time.Millisecond
	slowBackend    = 120 * time.Millisecond
	poolSize       = 4
)

// queryBackend simulates a backend call and reports on result.
// BUG: result is unbuffered, so if nobody is listening any more (the
// handler timed out) this send blocks forever and the goroutine leaks.
func queryBackend(id int, result chan<- string) {
	latency := fastBackend
	if id%4 == 0 {
		latency = slowBackend
	}
	time.Sleep(latency)
	result <- fmt.Sprintf("response #%d", id)
}

// handleRequest serves one request with a timeout.
func handleRequest(id int) {
	requests.Add(1)
	result := make(chan string) // the leak: should be make(chan string, 1)
	go queryBackend(id, result)
	select {
	case <-result:
	case <-time.After(requestTimeout):
		timeouts.Add(1)
	}
}

// poolWorker is a healthy long-lived worker: it parks on jobs between jobs.
func poolWorker(jobs <-chan int) {
	for j := range jobs {
		_ = j * j // "process" the job
	}
}

// scheduler feeds the pool a job on every tick.
func scheduler(jobs chan<- int) {
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	for n := 0; ; n++ {
		<-ticker.C
		jobs <- n
	}
}

func main() {
	flag.Parse()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	var stop <-chan time.Time
	if *duration > 0 {
		stop = time.After(*duration)
	}

	jobs := make(chan int)
	for i := 0; i < poolSize; i++ {
		go poolWorker(jobs)
	}
	go scheduler(jobs)

	fmt.Printf("READY pid=%d\n", os.Getpid())
	os.Stdout.Sync()

	incoming := time.NewTicker(requestEvery)
	defer incoming.Stop()
	for id := 1; ; id++ {
		select {
		case <-incoming.C:
			go handleRequest(id)
		case <-sigs:
			summary()
			return
		case <-stop:
			summary()
			return
		}
	}
}

func summary() {
	fmt.Printf("EXIT requests=%d timeouts=%d\n", requests.Load(), timeouts.Load())
	os.Stdout.Sync()
}
