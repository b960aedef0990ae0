// Command healthy is the fixture for the leak-suspect engine's false
// positives: goroutine patterns that look busy, idle or numerous but do not
// leak, chosen with -pattern. None of them may be reported as a suspect.
//
//	pool    16 workers `for job := range jobs` on one shared channel, fed a
//	        job only every 3s: the workers sit idle (chan receive) far longer
//	        than a 2s blocked threshold; their number never changes
//	http    a net/http server on 127.0.0.1:0 and 8 client goroutines in the
//	        same process requesting from it in a loop (-think apart), each on
//	        its own keep-alive connection; the handler uses
//	        context.WithTimeout + defer cancel and fans out to 2 goroutines
//	        that finish, collected on a channel
//	ticker  every 100ms a goroutine creates a 10ms time.Ticker, waits for 3
//	        ticks, stops it and returns
//	all     the three together
//
// The go statements carry trailing markers "SITE" + ":<name>" (pool, fanout,
// client, ticker; spelled out only there) so tests can find their lines.
//
// Output (stdout, one line each, flushed):
//
//	READY pid=<pid> pattern=<p>                  once everything runs
//	DUMPED goroutines=<n> jobs=<n> requests=<n> tickers=<n>
//	                                             after each SIGUSR1: pool jobs
//	                                             done, HTTP responses read,
//	                                             ticker goroutines finished
//
// Signals: SIGUSR1 writes a debug=2 goroutine dump to -dump PATH atomically
// (PATH.tmp then rename); SIGTERM/SIGINT exit 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	patternName = flag.String("pattern", "", "pool, http, ticker or all")
	dump        = flag.String("dump", "", "path written with a debug=2 goroutine dump on SIGUSR1")
	jobEvery    = flag.Duration("job-every", 3*time.Second, "pool: how often a job arrives")
	think       = flag.Duration("think", 0, "http: pause of each client between requests")

	jobsDone atomic.Int64
	requests atomic.Int64
	ticks    atomic.Int64
)

// ---- pool ----------------------------------------------------------------

const poolSize = 16

//go:noinline
func poolWorker(jobs <-chan int, results chan<- int) {
	for job := range jobs {
		results <- job * job
	}
}

func startPool() {
	jobs := make(chan int)
	results := make(chan int, poolSize)
	for i := 0; i < poolSize; i++ {
		go poolWorker(jobs, results) // SITE:pool
	}
	go func() {
		for range results {
			jobsDone.Add(1)
		}
	}()
	go func() {
		t := time.NewTicker(*jobEvery)
		defer t.Stop()
		for i := 0; ; i++ {
			<-t.C
			jobs <- i
		}
	}()
}

// ---- http ----------------------------------------------------------------

const clients = 8

//go:noinline
func part(ctx context.Context, out chan<- int, n int) {
	x := 0
	for i := 0; i < 1000; i++ {
		x += i * n
	}
	select {
	case out <- x:
	case <-ctx.Done():
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	out := make(chan int, 2)
	for n := 1; n <= 2; n++ {
		go part(ctx, out, n) // SITE:fanout
	}
	sum := 0
	for n := 0; n < 2; n++ {
		select {
		case v := <-out:
			sum += v
		case <-ctx.Done():
			http.Error(w, ctx.Err().Error(), http.StatusGatewayTimeout)
			return
		}
	}
	io.WriteString(w, strconv.Itoa(sum))
}

//go:noinline
func client(c *http.Client, url string) {
	for {
		resp, err := c.Get(url)
		if err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		requests.Add(1)
		if *think > 0 {
			time.Sleep(*think)
		}
	}
}

func startHTTP() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handle)}
	go srv.Serve(ln)
	// Each client has its own transport (a copy of the default one), so
	// each keeps one keep-alive connection busy: one request every -think.
	// (With one shared transport and a think time, the idle-connection list
	// hands out the most recently used connection first and most of the
	// others sit idle.)
	transport := func() *http.Transport {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 1
		return tr
	}
	url := "http://" + ln.Addr().String() + "/"
	for i := 0; i < clients; i++ {
		go client(&http.Client{Transport: transport()}, url) // SITE:client
	}
}

// ---- ticker --------------------------------------------------------------

//go:noinline
func threeTicks() {
	t := time.NewTicker(10 * time.Millisecond)
	for i := 0; i < 3; i++ {
		<-t.C
	}
	t.Stop()
	ticks.Add(1)
}

func startTicker() {
	go func() {
		for {
			time.Sleep(100 * time.Millisecond)
			go threeTicks() // SITE:ticker
		}
	}()
}

// ---- main ----------------------------------------------------------------

func main() {
	flag.Parse()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM, syscall.SIGINT)

	switch *patternName {
	case "pool":
		startPool()
	case "http":
		startHTTP()
	case "ticker":
		startTicker()
	case "all":
		startPool()
		startHTTP()
		startTicker()
	default:
		fmt.Fprintf(os.Stderr, "unknown -pattern %q (pool, http, ticker, all)\n", *patternName)
		os.Exit(2)
	}

	fmt.Printf("READY pid=%d pattern=%s\n", os.Getpid(), *patternName)
	os.Stdout.Sync()
	for s := range sigs {
		if s != syscall.SIGUSR1 {
			fmt.Fprintf(os.Stderr, "jobs=%d requests=%d tickers=%d\n",
				jobsDone.Load(), requests.Load(), ticks.Load())
			os.Exit(0)
		}
		if err := writeDump(*dump); err != nil {
			fmt.Fprintln(os.Stderr, "dump:", err)
			continue
		}
		fmt.Printf("DUMPED goroutines=%d jobs=%d requests=%d tickers=%d\n",
			runtime.NumGoroutine(), jobsDone.Load(), requests.Load(), ticks.Load())
		os.Stdout.Sync()
	}
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
