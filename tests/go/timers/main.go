// Command timers is the fixture for the tracer's timer and context
// accounting: ONE pattern of time.Timer / time.Ticker / time.AfterFunc /
// time.Sleep / context use, chosen with -pattern, done exactly -n times,
// while the program counts what it did so a test can compare the tracer's
// numbers with the program's own.
//
// Leaking patterns (what they create stays behind, referenced from a global
// slice so the GC never collects it):
//
//	ctx-timeout   context.WithTimeout(Background, 10m), never cancelled:
//	              1 context + 1 pending deadline timer per op
//	ctx-cancel    context.WithCancel(parent), never cancelled: 1 context per
//	              op (parent: see setup below)
//	ticker        starts a goroutine that creates a 20ms time.Ticker, keeps
//	              it and returns without Stop: the ticker outlives its owner
//	afterfunc     time.AfterFunc(10m, f), never stopped
//	after-loop    one loop of `select { <-pacer tick | <-time.After(1m) }`:
//	              every iteration arms a new 1-minute timer and leaves it
//	              pending (the pacer tick always wins)
//
// Healthy patterns (nothing is left pending or live once DONE is printed):
//
//	ctx-defer     a function doing context.WithTimeout(Background, 1m) +
//	              defer cancel() + a non-blocking select on ctx.Done()
//	ctx-parent    a parent context.WithCancel(Background) with 3 children
//	              context.WithCancel(parent); the parent is cancelled (its
//	              children with it), then each child's cancel is called too
//	ctx-deadline  context.WithTimeout(Background, 2ms), waits for ctx.Done()
//	              (the deadline fires), then calls cancel
//	ticker-stop   time.NewTicker(2ms), receives exactly 3 ticks, Stop
//	timer-reuse   ONE time.NewTimer(1h), created at the first op; each op
//	              Stop (true only the first time), Reset(2ms), <-t.C
//	afterfunc-ok  time.AfterFunc(1ms, f) and waits until f ran
//	sleep         time.Sleep(1ms)
//	storm         4 workers, n/4 ops each (the first n%4 workers one more),
//	              as fast as they can; one op is one goroutine that does
//	              context.WithTimeout(Background, 1m) + time.AfterFunc(1h, f),
//	              Stops the AfterFunc timer, cancels the context and
//	              signals its worker, which waits for it before the next op
//
// Lines the tests look for carry a trailing marker "SITE" + ":<name>" at
// the end of the line (spelled out only there, so a grep for the whole
// marker at the end of a line finds exactly one line each; some names are
// prefixes of others): the creating call of each pattern (ctx-timeout,
// ctx-parent, ctx-cancel, ticker-owner, ticker, afterfunc, after, ctx-defer,
// ctx-parent-op, ctx-child, ctx-deadline, ticker-stop, reuse, afterfunc-ok,
// sleep, storm-go, storm-ctx, storm-timer).
//
// Setup, done before READY: ctx-cancel creates the parent of all its
// children with context.WithCancel(Background) (marker ctx-parent; it is
// never cancelled and is NOT counted); every pattern except ctx-deadline,
// sleep and storm starts the pacer goroutine (below). No pattern creates a
// timer or a context before SIGUSR2 otherwise.
//
// Pacing: the ops of ctx-timeout, ctx-cancel, ticker, afterfunc, after-loop,
// ctx-defer, ctx-parent, ticker-stop, timer-reuse and afterfunc-ok are
// spaced -every apart by the pacer, a goroutine started before READY that
// waits for SIGUSR2, then n times does time.Sleep(-every) and a send on an
// unbuffered channel; the pattern does one op per value received (after-loop
// receives it in its select). So those patterns call no time.Sleep of their
// own; the pacer's Sleeps are counted apart (pacer_sleeps, exactly n at
// DONE). ctx-deadline, sleep and storm are not paced (-every is unused):
// their ops follow each other at the pace of their own timers, or at full
// speed (storm).
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid> pattern=<p>      setup done, waiting for SIGUSR2
//	DONE <counts>                    once the n ops are done
//	COUNTS <counts>                  after each SIGUSR1 (any time)
//
// <counts> is always all these keys, in this order:
//
//	timers=       timers created at the marked sites: NewTimer, NewTicker,
//	              AfterFunc, After, and the deadline timer of each
//	              WithTimeout (every one of them creates one here)
//	stopped=      Timer.Stop calls that returned true; also every
//	              Ticker.Stop (it returns nothing; it stops a running
//	              ticker) and every deadline timer stopped by a first
//	              cancel of its context (context's own Stop call cannot be
//	              observed; the cancel came first, ctx.Err() is Canceled,
//	              so the deadline timer was still pending and was stopped)
//	fired=        firings the program observed: values received from a
//	              timer or ticker channel, AfterFunc callbacks that ran,
//	              deadlines seen expired (ctx.Err() == DeadlineExceeded)
//	reset=        Timer.Reset calls
//	pending=      one-shot timers armed and neither stopped (true) nor seen
//	              fired, plus tickers not stopped; a Reset of an inactive
//	              timer arms it again. A timer that fires unobserved (the
//	              after-loop channels after 1 minute) stays pending here
//	sleeps=       time.Sleep calls of the pattern (sleep only)
//	contexts=     cancelable contexts created at the marked sites
//	cancelled=    contexts cancelled for the first time, by any cause
//	by_caller=    ... by their own cancel function
//	by_parent=    ... by the cancellation of their parent
//	by_deadline=  ... by their deadline
//	live=         contexts - cancelled
//	pacer_sleeps= time.Sleep calls of the pacer since SIGUSR2
//
// Every counter is a sync/atomic, incremented right before the counted call
// (creations, Sleep) or right after it (Stop, Reset, receives, cancels,
// whose result decides). Expected DONE for -n 20 (pacer_sleeps=20 when
// paced, else 0; keys left out are 0):
//
//	ctx-timeout   timers=20 pending=20 contexts=20 live=20
//	ctx-cancel    contexts=20 live=20
//	ticker        timers=20 pending=20
//	afterfunc     timers=20 pending=20
//	after-loop    timers=20 pending=20
//	ctx-defer     timers=20 stopped=20 contexts=20 cancelled=20 by_caller=20
//	ctx-parent    contexts=80 cancelled=80 by_caller=20 by_parent=60
//	ctx-deadline  timers=20 fired=20 contexts=20 cancelled=20 by_deadline=20
//	ticker-stop   timers=20 stopped=20 fired=60
//	timer-reuse   timers=1 stopped=1 fired=20 reset=20
//	afterfunc-ok  timers=20 fired=20
//	sleep         sleeps=20
//	storm         timers=40 stopped=40 contexts=20 cancelled=20 by_caller=20
//
// After DONE the program stays alive, everything it leaked still referenced,
// until SIGTERM.
//
// Signals: SIGUSR2 starts the pattern (once; later ones are ignored);
// SIGUSR1 prints COUNTS; SIGTERM/SIGINT exit 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	patternName = flag.String("pattern", "", "the pattern (see the package doc)")
	nOps        = flag.Int("n", 200, "number of ops of the pattern")
	every       = flag.Duration("every", 10*time.Millisecond, "spacing of the ops of paced patterns")
)

// ---- counters ------------------------------------------------------------

var (
	timers      atomic.Int64
	stopped     atomic.Int64
	fired       atomic.Int64
	resets      atomic.Int64
	pending     atomic.Int64
	sleeps      atomic.Int64
	contexts    atomic.Int64
	cancelled   atomic.Int64
	byCaller    atomic.Int64
	byParent    atomic.Int64
	byDeadline  atomic.Int64
	pacerSleeps atomic.Int64
)

func counts() string {
	ctxs, canc := contexts.Load(), cancelled.Load()
	kv := []struct {
		k string
		v int64
	}{
		{"timers", timers.Load()},
		{"stopped", stopped.Load()},
		{"fired", fired.Load()},
		{"reset", resets.Load()},
		{"pending", pending.Load()},
		{"sleeps", sleeps.Load()},
		{"contexts", ctxs},
		{"cancelled", canc},
		{"by_caller", byCaller.Load()},
		{"by_parent", byParent.Load()},
		{"by_deadline", byDeadline.Load()},
		{"live", ctxs - canc},
		{"pacer_sleeps", pacerSleeps.Load()},
	}
	parts := make([]string, len(kv))
	for i, p := range kv {
		parts[i] = fmt.Sprintf("%s=%d", p.k, p.v)
	}
	return strings.Join(parts, " ")
}

// newTimer: a timer (or ticker) is about to be created and armed.
func newTimer() {
	timers.Add(1)
	pending.Add(1)
}

// newContext: a cancelable context is about to be created, with a deadline
// timer when withTimer.
func newContext(withTimer bool) {
	contexts.Add(1)
	if withTimer {
		newTimer()
	}
}

// stoppedPending: a pending timer was stopped (or a ticker).
func stoppedPending() {
	stopped.Add(1)
	pending.Add(-1)
}

// observedFire: a firing was observed; oneShot ones are no longer pending.
func observedFire(oneShot bool) {
	fired.Add(1)
	if oneShot {
		pending.Add(-1)
	}
}

// firstCancel: a context was cancelled for the first time, for reason by.
func firstCancel(by *atomic.Int64) {
	cancelled.Add(1)
	by.Add(1)
}

// callerCancelled is called (deferred) right after the first cancel of a
// context with a deadline: if that cancel did cancel it, its deadline timer,
// still pending, was stopped.
func callerCancelled(ctx context.Context) {
	if ctx.Err() == context.Canceled {
		firstCancel(&byCaller)
		stoppedPending()
	}
}

// ---- keeping leaked objects ----------------------------------------------

var (
	keptMu sync.Mutex
	kept   []any
)

func keep(objs ...any) {
	keptMu.Lock()
	kept = append(kept, objs...)
	keptMu.Unlock()
}

// ---- pacer ---------------------------------------------------------------

// tick carries one value per paced op.
var tick = make(chan struct{})

// pacer waits for start, then n times sleeps d and sends on tick.
func pacer(start <-chan struct{}, n int, d time.Duration) {
	<-start
	for i := 0; i < n; i++ {
		pacerSleeps.Add(1)
		time.Sleep(d)
		tick <- struct{}{}
	}
}

// paced runs op n times, once per pacer tick.
func paced(op func()) func(n int) {
	return func(n int) {
		for i := 0; i < n; i++ {
			<-tick
			op()
		}
	}
}

// repeat runs op n times back to back.
func repeat(op func()) func(n int) {
	return func(n int) {
		for i := 0; i < n; i++ {
			op()
		}
	}
}

// ---- leaking patterns ----------------------------------------------------

//go:noinline
func ctxTimeoutOp() {
	newContext(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // SITE:ctx-timeout
	keep(ctx, cancel)
}

// ctxCancelParent is the parent of all ctx-cancel children (setup).
var ctxCancelParent context.Context

func ctxCancelSetup() {
	parent, parentCancel := context.WithCancel(context.Background()) // SITE:ctx-parent
	keep(parent, parentCancel)
	ctxCancelParent = parent
}

//go:noinline
func ctxCancelOp() {
	newContext(false)
	child, cancel := context.WithCancel(ctxCancelParent) // SITE:ctx-cancel
	keep(child, cancel)
}

var (
	owners    sync.WaitGroup
	tickersMu sync.Mutex
	tickers   []*time.Ticker
)

//go:noinline
func tickerOp() {
	owners.Add(1)
	go tickerOwner() // SITE:ticker-owner
}

// tickerOwner creates a ticker, keeps it and returns without stopping it.
//
//go:noinline
func tickerOwner() {
	defer owners.Done()
	newTimer()
	tk := time.NewTicker(20 * time.Millisecond) // SITE:ticker
	tickersMu.Lock()
	tickers = append(tickers, tk)
	tickersMu.Unlock()
}

func tickerRun(n int) {
	paced(tickerOp)(n)
	owners.Wait()
}

//go:noinline
func afterFuncOp() {
	newTimer()
	t := time.AfterFunc(10*time.Minute, onLeakedFire) // SITE:afterfunc
	keep(t)
}

func onLeakedFire() { observedFire(true) }

// afterLoop is the one loop of after-loop; the pacer tick ends each
// iteration (with -every below a minute), leaving that iteration's timer.
func afterLoop(n int) {
	for i := 0; i < n; i++ {
		newTimer()
		select {
		case <-tick:
		case <-time.After(time.Minute): // SITE:after
			observedFire(true)
		}
	}
}

// ---- healthy patterns ----------------------------------------------------

//go:noinline
func ctxDeferOp() {
	newContext(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // SITE:ctx-defer
	// Deferred calls run last in, first out: callerCancelled(ctx) runs
	// right after cancel().
	defer callerCancelled(ctx)
	defer cancel()
	select {
	case <-ctx.Done():
	default:
	}
}

//go:noinline
func ctxParentOp() {
	newContext(false)
	parent, cancelParent := context.WithCancel(context.Background()) // SITE:ctx-parent-op
	var children [3]context.Context
	var cancels [3]context.CancelFunc
	for i := range children {
		newContext(false)
		children[i], cancels[i] = context.WithCancel(parent) // SITE:ctx-child
	}
	cancelParent()
	if parent.Err() == context.Canceled {
		firstCancel(&byCaller)
	}
	for _, child := range children {
		if child.Err() == context.Canceled {
			firstCancel(&byParent)
		}
	}
	for _, cancel := range cancels {
		cancel() // already cancelled by the parent: not counted
	}
}

//go:noinline
func ctxDeadlineOp() {
	newContext(true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Millisecond) // SITE:ctx-deadline
	<-ctx.Done()
	if ctx.Err() == context.DeadlineExceeded {
		observedFire(true)
		firstCancel(&byDeadline)
	}
	cancel() // already cancelled by the deadline: not counted
}

//go:noinline
func tickerStopOp() {
	newTimer()
	tk := time.NewTicker(2 * time.Millisecond) // SITE:ticker-stop
	for i := 0; i < 3; i++ {
		<-tk.C
		observedFire(false)
	}
	tk.Stop()
	stoppedPending()
}

// timerReuse: one timer, created at the first op, reused by every op.
func timerReuse(n int) {
	var t *time.Timer
	for i := 0; i < n; i++ {
		<-tick
		if t == nil {
			newTimer()
			t = time.NewTimer(time.Hour) // SITE:reuse
		}
		// After the first op the timer has fired and its value was
		// received: Stop returns false (all Go versions).
		if t.Stop() {
			stoppedPending()
		}
		wasActive := t.Reset(2 * time.Millisecond)
		resets.Add(1)
		if !wasActive {
			pending.Add(1)
		}
		<-t.C
		observedFire(true)
	}
	keep(t)
}

//go:noinline
func afterFuncOKOp() {
	done := make(chan struct{})
	onFire := func() {
		observedFire(true)
		done <- struct{}{}
	}
	newTimer()
	time.AfterFunc(time.Millisecond, onFire) // SITE:afterfunc-ok
	<-done
}

//go:noinline
func sleepOp() {
	sleeps.Add(1)
	time.Sleep(time.Millisecond) // SITE:sleep
}

const stormWorkers = 4

func storm(n int) {
	var wg sync.WaitGroup
	for w := 0; w < stormWorkers; w++ {
		ops := n / stormWorkers
		if w < n%stormWorkers {
			ops++
		}
		wg.Add(1)
		go stormWorker(ops, &wg)
	}
	wg.Wait()
}

func stormWorker(ops int, wg *sync.WaitGroup) {
	defer wg.Done()
	done := make(chan struct{})
	for i := 0; i < ops; i++ {
		go stormOp(done) // SITE:storm-go
		<-done
	}
}

//go:noinline
func stormOp(done chan<- struct{}) {
	newContext(true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // SITE:storm-ctx
	newTimer()
	t := time.AfterFunc(time.Hour, noop) // SITE:storm-timer
	if t.Stop() {
		stoppedPending()
	}
	cancel()
	callerCancelled(ctx)
	done <- struct{}{}
}

func noop() {}

// ---- main ----------------------------------------------------------------

type pattern struct {
	setup func()      // before READY
	paced bool        // needs the pacer
	run   func(n int) // the n ops
}

var patterns = map[string]pattern{
	"ctx-timeout":  {run: paced(ctxTimeoutOp), paced: true},
	"ctx-cancel":   {setup: ctxCancelSetup, run: paced(ctxCancelOp), paced: true},
	"ticker":       {run: tickerRun, paced: true},
	"afterfunc":    {run: paced(afterFuncOp), paced: true},
	"after-loop":   {run: afterLoop, paced: true},
	"ctx-defer":    {run: paced(ctxDeferOp), paced: true},
	"ctx-parent":   {run: paced(ctxParentOp), paced: true},
	"ctx-deadline": {run: repeat(ctxDeadlineOp)},
	"ticker-stop":  {run: paced(tickerStopOp), paced: true},
	"timer-reuse":  {run: timerReuse, paced: true},
	"afterfunc-ok": {run: paced(afterFuncOKOp), paced: true},
	"sleep":        {run: repeat(sleepOp)},
	"storm":        {run: storm},
}

const patternList = "ctx-timeout, ctx-cancel, ticker, afterfunc, after-loop, ctx-defer, ctx-parent, " +
	"ctx-deadline, ticker-stop, timer-reuse, afterfunc-ok, sleep, storm"

func runner(start <-chan struct{}, p pattern, n int) {
	<-start
	p.run(n)
	fmt.Println("DONE " + counts())
}

func main() {
	flag.Parse()
	p, ok := patterns[*patternName]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown -pattern %q (%s)\n", *patternName, patternList)
		os.Exit(2)
	}
	if *nOps < 0 {
		fmt.Fprintln(os.Stderr, "-n must not be negative")
		os.Exit(2)
	}
	if p.paced && *every <= 0 {
		fmt.Fprintln(os.Stderr, "-every must be positive")
		os.Exit(2)
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGTERM, syscall.SIGINT)

	if p.setup != nil {
		p.setup()
	}
	start := make(chan struct{})
	if p.paced {
		go pacer(start, *nOps, *every)
	}
	go runner(start, p, *nOps)

	fmt.Printf("READY pid=%d pattern=%s\n", os.Getpid(), *patternName)
	os.Stdout.Sync()
	started := false
	for s := range sigs {
		switch s {
		case syscall.SIGUSR1:
			fmt.Println("COUNTS " + counts())
		case syscall.SIGUSR2:
			if !started {
				started = true
				close(start)
			}
		default:
			os.Exit(0)
		}
	}
}
