// Command leaky is the goroutine-lifecycle test fixture for the tracer.
//
// It spawns, from the main goroutine, exactly:
//
//	N goroutines blocked forever on a channel receive
//	M goroutines blocked forever in a select
//	K goroutines that finish promptly
//
// Each of the three go statements carries a trailing marker comment
// ("SITE" + ":recv", ":select", ":finish"; spelled out only there, so a
// grep for the marker finds exactly one line). Tests rely on the file:line
// of those go statements, so keep each marker on its go statement.
//
// Output (stdout, one line each, flushed):
//
//	WAITING pid=<pid>                                   only with -spawn-on-signal, before spawning
//	READY pid=<pid> spawner_goid=<goid> n=N m=M k=K     once all N+M are parked and K are done
//	DUMPED                                              after each SIGUSR1, once PATH is written
//
// Signals: SIGUSR1 writes a debug=2 goroutine dump to -dump PATH atomically
// (PATH.tmp then rename); with -spawn-on-signal, SIGUSR2 starts the spawning
// (so a tracer attached before it sees every creation); SIGTERM/SIGINT exit 0.
// Otherwise it runs forever.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	n        = flag.Int("n", 3, "goroutines blocked forever on <-ch")
	m        = flag.Int("m", 2, "goroutines blocked forever in select")
	k        = flag.Int("k", 4, "goroutines that finish promptly")
	dump     = flag.String("dump", "", "path written with a debug=2 goroutine dump on SIGUSR1")
	onSignal = flag.Bool("spawn-on-signal", false, "print WAITING and spawn only after SIGUSR2")
)

// The channels and WaitGroup are package-level so that the go statements
// call argument-less functions: the compiler then starts the goroutine
// directly at main.blockRecv / main.blockSelect / main.finish (no
// main.main.gowrapN closure), and go:noinline keeps those frames in stacks.
var (
	never      = make(chan int) // nothing is ever sent on these
	neverA     = make(chan int)
	neverB     = make(chan int)
	finishedWG sync.WaitGroup
)

// blockRecv parks forever in a channel receive.
//
//go:noinline
func blockRecv() {
	<-never
}

// blockSelect parks forever in a select.
//
//go:noinline
func blockSelect() {
	select {
	case <-neverA:
	case <-neverB:
	}
}

// finish does (almost) nothing and returns.
//
//go:noinline
func finish() {
	finishedWG.Done()
}

func main() {
	flag.Parse()

	// Register early so SIGUSR1 is never fatal, even during the wait.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)

	if *onSignal {
		fmt.Printf("WAITING pid=%d\n", os.Getpid())
		os.Stdout.Sync()
		for s := range sigs {
			if s == syscall.SIGUSR2 {
				break
			}
			handle(s)
		}
	}

	finishedWG.Add(*k)

	// All go statements below are executed by this (the main) goroutine.
	for i := 0; i < *n; i++ {
		go blockRecv() // SITE:recv
	}
	for i := 0; i < *m; i++ {
		go blockSelect() // SITE:select
	}
	for i := 0; i < *k; i++ {
		go finish() // SITE:finish
	}
	finishedWG.Wait()

	// Wait until the runtime reports every blocker as parked, then give the
	// scheduler a moment to settle.
	for parked("main.blockRecv(", "[chan receive") < *n ||
		parked("main.blockSelect(", "[select") < *m {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)

	fmt.Printf("READY pid=%d spawner_goid=%d n=%d m=%d k=%d\n",
		os.Getpid(), goid(), *n, *m, *k)
	os.Stdout.Sync()

	for s := range sigs {
		handle(s)
	}
}

// handle reacts to one signal: dump on SIGUSR1, ignore a late SIGUSR2,
// exit 0 otherwise.
func handle(s os.Signal) {
	if s == syscall.SIGUSR2 {
		return
	}
	if s != syscall.SIGUSR1 {
		os.Exit(0)
	}
	if err := writeDump(*dump); err != nil {
		fmt.Fprintln(os.Stderr, "dump:", err)
		return
	}
	fmt.Println("DUMPED")
	os.Stdout.Sync()
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

// parked counts goroutines whose stack contains fn and whose header
// ("goroutine 7 [chan receive]:") starts its state with state.
func parked(fn, state string) int {
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
		if strings.Contains(header, " "+state) && bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

// goid returns the id of the calling goroutine, parsed from the first line
// of its stack trace: "goroutine 1 [running]:".
func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	fields := strings.Fields(string(buf))
	id, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil {
		panic("cannot parse goroutine id: " + err.Error())
	}
	return id
}
