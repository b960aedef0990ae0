// Command leaks is the fixture for the leak-suspect engine: it reproduces ONE
// classic goroutine leak, chosen with -pattern, at -rate leaked goroutines per
// second, next to healthy churn that must not be reported.
//
// Patterns (the leaking go statement of each carries a trailing marker "SITE"
// + ":<pattern>", the statement it blocks on forever "BLOCK" + ":<pattern>";
// spelled out only there, so a grep finds exactly one line each). The wait
// reason is what Go's own goroutine dump prints for the leaked goroutines:
//
//	timeout    a request handler starts a worker that sends its result on an
//	           unbuffered channel; the handler gives up after 1ms, and only
//	           then is the result ready: the worker blocks on the send
//	           (chan send)
//	producer   a producer sends items on a channel; its consumer reads the
//	           first one and returns (chan send)
//	waitgroup  a goroutine waits on a WaitGroup that got Add(2) and only one
//	           Done (Go 1.21: semacquire; Go 1.22+: sync.WaitGroup.Wait)
//	mutex      a goroutine Locks a mutex that was locked once at startup by a
//	           goroutine that returned without unlocking (sync.Mutex.Lock)
//	context    a goroutine waits for <-ctx.Done() of a context whose cancel
//	           is kept but never called (chan receive)
//
// Every iteration also starts one healthy goroutine that hands a value to a
// long-lived collector and exits (churn the tracer must not report); the
// churn goes on at max(rate, 20)/s also when leaking is paused or -rate is 0.
// With -prefill N, N goroutines are leaked at once before READY (and READY is
// printed once all of them are parked where they leak).
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid> pattern=<p> leaked=<n>       once the loop has started
//	PAUSED leaked=<n> settled=<m>                after SIGUSR2 (see below)
//	DUMPED leaked=<n>                            after each SIGUSR1
//
// leaked counts the goroutines this pattern has leaked so far (incremented
// right before each leaking go statement; they are never freed).
//
// Signals: SIGUSR1 writes a debug=2 goroutine dump to -dump PATH atomically
// (PATH.tmp then rename); SIGUSR2 stops leaking (the churn goes on), waits
// until the runtime shows every leaked goroutine parked in its leak state
// (settled == leaked; at most 10s) and prints PAUSED; SIGTERM/SIGINT exit 0.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	patternName = flag.String("pattern", "", "timeout, producer, waitgroup, mutex or context")
	rate        = flag.Float64("rate", 20, "goroutines leaked per second (0: only -prefill)")
	prefill     = flag.Int("prefill", 0, "goroutines leaked at once before READY")
	dump        = flag.String("dump", "", "path written with a debug=2 goroutine dump on SIGUSR1")

	leaked atomic.Int64
)

// A leak pattern: leak starts one goroutine that never ends; the runtime
// shows it with fn on its stack, parked in one of states.
type pattern struct {
	leak   func()
	fn     string
	states []string
}

var patterns = map[string]pattern{
	"timeout":   {leakTimeout, "main.timeoutWorker(", []string{"chan send"}},
	"producer":  {leakProducer, "main.producer(", []string{"chan send"}},
	"waitgroup": {leakWaitGroup, "main.waitGroupWaiter(", []string{"semacquire", "sync.WaitGroup.Wait"}},
	"mutex":     {leakMutex, "main.mutexWaiter(", []string{"sync.Mutex.Lock"}},
	"context":   {leakContext, "main.contextWatcher(", []string{"chan receive"}},
}

// ---- timeout -------------------------------------------------------------

// handleRequest asks a worker for a result but gives up after 1ms; the
// worker's result is only ready after that (gaveUp), and nobody receives it.
//
//go:noinline
func handleRequest() {
	result := make(chan int) // unbuffered: the bug
	gaveUp := make(chan struct{})
	go timeoutWorker(result, gaveUp) // SITE:timeout
	select {
	case v := <-result:
		fmt.Fprintln(os.Stderr, "timeout: unexpected result", v)
	case <-time.After(time.Millisecond):
	}
	close(gaveUp)
}

//go:noinline
func timeoutWorker(result chan<- int, gaveUp <-chan struct{}) {
	<-gaveUp     // the slow part of the work
	result <- 42 // BLOCK:timeout
}

func leakTimeout() { go handleRequest() }

// ---- producer ------------------------------------------------------------

//go:noinline
func producer(items chan<- int) {
	for i := 0; ; i++ {
		items <- i // BLOCK:producer
	}
}

// leakProducer consumes only the first item and returns early.
//
//go:noinline
func leakProducer() {
	items := make(chan int)
	go producer(items) // SITE:producer
	<-items
}

// ---- waitgroup -----------------------------------------------------------

//go:noinline
func waitGroupWaiter(wg *sync.WaitGroup) {
	wg.Wait() // BLOCK:waitgroup
}

//go:noinline
func leakWaitGroup() {
	wg := new(sync.WaitGroup)
	wg.Add(2)
	go wg.Done()           // the only Done: the second part was forgotten
	go waitGroupWaiter(wg) // SITE:waitgroup
}

// ---- mutex ---------------------------------------------------------------

var held sync.Mutex

// lockAndForget returns without unlocking.
//
//go:noinline
func lockAndForget(done chan<- struct{}) {
	held.Lock()
	close(done)
}

//go:noinline
func mutexWaiter() {
	held.Lock() // BLOCK:mutex
	held.Unlock()
}

func leakMutex() {
	go mutexWaiter() // SITE:mutex
}

// ---- context -------------------------------------------------------------

// cancels keeps every cancel function, never called (the bug).
var cancels []context.CancelFunc

//go:noinline
func contextWatcher(ctx context.Context) {
	<-ctx.Done() // BLOCK:context
}

//go:noinline
func leakContext() {
	ctx, cancel := context.WithCancel(context.Background())
	cancels = append(cancels, cancel)
	go contextWatcher(ctx) // SITE:context
}

// ---- healthy churn -------------------------------------------------------

var sink = make(chan int, 64)

// collect is the long-lived receiver of the churn.
func collect() {
	sum := 0
	for v := range sink {
		sum += v
	}
	_ = sum
}

//go:noinline
func churn(i int) {
	x := 0
	for j := 0; j < 100; j++ {
		x += i * j
	}
	sink <- x
}

// ---- main ----------------------------------------------------------------

func main() {
	flag.Parse()
	p, ok := patterns[*patternName]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown -pattern %q (timeout, producer, waitgroup, mutex, context)\n", *patternName)
		os.Exit(2)
	}
	if *rate < 0 || *prefill < 0 {
		fmt.Fprintln(os.Stderr, "-rate and -prefill must not be negative")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)

	if *patternName == "mutex" {
		done := make(chan struct{})
		go lockAndForget(done)
		<-done
	}
	go collect()

	if *prefill > 0 {
		for i := 0; i < *prefill; i++ {
			leaked.Add(1)
			p.leak()
		}
		if got := waitSettled(p, *prefill, 30*time.Second); got != *prefill {
			fmt.Fprintf(os.Stderr, "prefill: only %d of %d goroutines parked in %v\n", got, *prefill, p.states)
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}

	pause := make(chan chan struct{})
	go loop(p, pause)

	fmt.Printf("READY pid=%d pattern=%s leaked=%d\n", os.Getpid(), *patternName, leaked.Load())
	os.Stdout.Sync()

	for s := range sigs {
		switch s {
		case syscall.SIGUSR1:
			if err := writeDump(*dump); err != nil {
				fmt.Fprintln(os.Stderr, "dump:", err)
				continue
			}
			fmt.Printf("DUMPED leaked=%d\n", leaked.Load())
		case syscall.SIGUSR2:
			ack := make(chan struct{})
			pause <- ack
			<-ack
			n := int(leaked.Load())
			settled := waitSettled(p, n, 10*time.Second)
			fmt.Printf("PAUSED leaked=%d settled=%d\n", n, settled)
		default:
			os.Exit(0)
		}
		os.Stdout.Sync()
	}
}

// loop runs the iterations: one churn goroutine each, and one leak while
// leaking (rate > 0, not paused), at max(rate, 20) iterations per second.
func loop(p pattern, pause <-chan chan struct{}) {
	leaking := *rate > 0
	perSec := *rate
	if perSec < 20 {
		perSec = 20
	}
	tick := time.Duration(float64(time.Second) / perSec)
	if tick < time.Millisecond {
		tick = time.Millisecond
	}
	if tick > 50*time.Millisecond {
		tick = 50 * time.Millisecond
	}
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	start := time.Now()
	done := 0
	for {
		select {
		case ack := <-pause:
			leaking = false
			close(ack)
		case <-ticker.C:
			due := int(time.Since(start).Seconds() * perSec)
			for ; done < due; done++ {
				go churn(done)
				if leaking {
					leaked.Add(1)
					p.leak()
				}
			}
		}
	}
}

// waitSettled waits (at most timeout) until want goroutines have p.fn on
// their stack and are parked in one of p.states; returns how many are.
func waitSettled(p pattern, want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := parked(p)
		if got >= want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// parked counts goroutines whose stack contains p.fn and whose header
// ("goroutine 7 [chan send, 2 minutes]:") shows one of p.states.
func parked(p pattern) int {
	buf := make([]byte, 1<<20)
	for {
		l := runtime.Stack(buf, true)
		if l < len(buf) {
			buf = buf[:l]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		header, _, _ := strings.Cut(string(g), "\n")
		_, state, ok := strings.Cut(header, " [")
		if !ok || !bytes.Contains(g, []byte(p.fn)) {
			continue
		}
		state, _, _ = strings.Cut(strings.TrimSuffix(state, "]:"), ",")
		for _, s := range p.states {
			if state == s {
				count++
				break
			}
		}
	}
	return count
}

// writeDump writes the debug=2 goroutine profile to path via path.tmp + rename.
func writeDump(path string) error {
	if path == "" {
		return fmt.Errorf("no -dump path given")
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("goroutine").WriteTo(f, 2); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
