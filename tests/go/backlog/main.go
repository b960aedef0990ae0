// Command backlog is the fixture for goroutines that leaked BEFORE the
// tracer attached: it parks N goroutines in each of five classic ways, waits
// until the runtime shows all of them parked, and only then prints READY.
//
// Kinds (each go statement carries a trailing marker "SITE" + ":<kind>", and
// the blocking statement "BLOCK" + ":<kind>"; spelled out only there so a grep
// finds exactly one line each):
//
//	recv     <-ch on a channel nobody sends on          (chan receive)
//	select   select on two such channels                (select)
//	mutex    Lock of a mutex held forever               (sync.Mutex.Lock)
//	wg       Wait on a WaitGroup that never reaches 0   (sync.WaitGroup.Wait)
//	sleep    time.Sleep(24h)                            (sleep)
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid> n=N total=<runtime.NumGoroutine()>
//	DUMPED                                              after each SIGUSR1
//
// Signals: SIGUSR1 writes a debug=2 goroutine dump to -dump PATH atomically
// (PATH.tmp then rename); SIGTERM/SIGINT exit 0.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"
)

var (
	n    = flag.Int("n", 3, "goroutines parked per kind")
	dump = flag.String("dump", "", "path written with a debug=2 goroutine dump on SIGUSR1")
)

var (
	never   = make(chan int)
	neverA  = make(chan int)
	neverB  = make(chan int)
	held    sync.Mutex
	pending sync.WaitGroup
)

//go:noinline
func blockRecv() {
	<-never // BLOCK:recv
}

//go:noinline
func blockSelect() {
	select { // BLOCK:select
	case <-neverA:
	case <-neverB:
	}
}

//go:noinline
func blockMutex() {
	held.Lock() // BLOCK:mutex
}

//go:noinline
func blockWaitGroup() {
	pending.Wait() // BLOCK:wg
}

//go:noinline
func blockSleep() {
	time.Sleep(24 * time.Hour) // BLOCK:sleep
}

func main() {
	flag.Parse()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)

	held.Lock()
	pending.Add(1)
	before := runtime.NumGoroutine()
	for i := 0; i < *n; i++ {
		go blockRecv() // SITE:recv
	}
	for i := 0; i < *n; i++ {
		go blockSelect() // SITE:select
	}
	for i := 0; i < *n; i++ {
		go blockMutex() // SITE:mutex
	}
	for i := 0; i < *n; i++ {
		go blockWaitGroup() // SITE:wg
	}
	for i := 0; i < *n; i++ {
		go blockSleep() // SITE:sleep
	}
	waitParked(before + 5**n)
	useCgo()

	fmt.Printf("READY pid=%d n=%d total=%d\n", os.Getpid(), *n, runtime.NumGoroutine())
	os.Stdout.Sync()
	for s := range sigs {
		if s != syscall.SIGUSR1 {
			os.Exit(0)
		}
		if err := writeDump(*dump); err != nil {
			fmt.Fprintln(os.Stderr, "dump:", err)
			continue
		}
		fmt.Println("DUMPED")
		os.Stdout.Sync()
	}
}

// waitParked returns once the goroutine profile shows `want` goroutines and
// none of ours is still running or runnable (a mutex waiter spins before it
// parks), plus a moment for the scheduler to settle.
func waitParked(want int) {
	for {
		records := make([]runtime.StackRecord, want+64)
		got, ok := runtime.GoroutineProfile(records)
		if ok && got >= want && parkedAll() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
}

// parkedAll reports whether no goroutine other than the caller is running
// or runnable, from the runtime's own all-goroutine traceback headers.
func parkedAll() bool {
	buf := make([]byte, 64<<10)
	for {
		l := runtime.Stack(buf, true)
		if l < len(buf) {
			buf = buf[:l]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	busy := 0
	for i := 0; i+1 < len(buf); i++ {
		if buf[i] == '[' && (hasPrefix(buf[i+1:], "running]") || hasPrefix(buf[i+1:], "runnable]")) {
			busy++
		}
	}
	return busy <= 1
}

func hasPrefix(b []byte, s string) bool {
	return len(b) >= len(s) && string(b[:len(s)]) == s
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
