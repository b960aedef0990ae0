// Command httpsvc is the HTTP-service overhead benchmark target for the
// tracer: a small service on loopback and a closed-loop load generator.
//
// Each request to /work runs the shape of a typical handler: a context with
// a 100 ms timeout, a fan-out of 3 goroutines that each hash a few hundred
// bytes and send the result on a channel, and a select that collects them or
// gives up when the context ends.
//
// Modes:
//
//	server  serve on -addr until SIGTERM/SIGINT; prints
//	        READY pid=<pid> addr=<host:port>
//	load    -clients goroutines, each one request at a time over its own
//	        keep-alive connection to -addr: -warmup, then prints WARM (and
//	        with -wait-start waits for a line on stdin, still under load),
//	        then measures -duration and prints
//	        REQS <n> RPS <x> P50_US <a> P99_US <b> ERRORS <e>
//	both    server and load in one process (for trying it out; the
//	        benchmark runs them as two processes so that only the server is
//	        traced)
//
// Latencies are the client's, request sent to body read. A request counts
// in the measured window when it completes inside it.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

var (
	mode      = flag.String("mode", "both", "server|load|both")
	addr      = flag.String("addr", "127.0.0.1:0", "server: listen address; load: server address")
	clients   = flag.Int("clients", 16, "load: concurrent clients (one request in flight each)")
	warmup    = flag.Duration("warmup", 2*time.Second, "load: time under load before measuring")
	duration  = flag.Duration("duration", 5*time.Second, "load: measured window")
	waitStart = flag.Bool("wait-start", false, "load: after WARM, wait for a line on stdin before measuring")
)

const (
	// fanout is how many goroutines each request spawns.
	fanout = 3
	// payload is how many bytes each of them hashes.
	payload = 512
	// handlerTimeout bounds each request's work.
	handlerTimeout = 100 * time.Millisecond
)

func main() {
	flag.Parse()
	switch *mode {
	case "server":
		ln := listen(*addr)
		fmt.Printf("READY pid=%d addr=%s\n", os.Getpid(), ln.Addr())
		os.Stdout.Sync()
		go serve(ln)
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
	case "load":
		runLoad(*addr)
	case "both":
		ln := listen(*addr)
		go serve(ln)
		runLoad(ln.Addr().String())
	default:
		fmt.Fprintf(os.Stderr, "unknown -mode %q\n", *mode)
		os.Exit(2)
	}
}

func listen(a string) net.Listener {
	ln, err := net.Listen("tcp", a)
	if err != nil {
		fmt.Fprintf(os.Stderr, "listen %s: %v\n", a, err)
		os.Exit(1)
	}
	return ln
}

func serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/work", handleWork)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}

// handleWork fans the request out to 3 goroutines and combines their hashes.
func handleWork(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), handlerTimeout)
	defer cancel()
	seed := r.URL.Query().Get("id")
	// Buffered: a worker never blocks, even when the handler gave up.
	results := make(chan [sha256.Size]byte, fanout)
	for i := 0; i < fanout; i++ {
		go func(part int) {
			var buf [payload]byte
			n := copy(buf[:], seed)
			for j := n; j < len(buf); j++ {
				buf[j] = byte(j + part)
			}
			results <- sha256.Sum256(buf[:])
		}(i)
	}
	var sum [sha256.Size]byte
	for i := 0; i < fanout; i++ {
		select {
		case h := <-results:
			for j := range sum {
				sum[j] ^= h[j]
			}
		case <-ctx.Done():
			http.Error(w, ctx.Err().Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain")
	var out [2*sha256.Size + 1]byte
	hex.Encode(out[:], sum[:])
	out[len(out)-1] = '\n'
	w.Write(out[:])
}

// Phases of the load generator.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

func runLoad(server string) {
	transport := &http.Transport{
		MaxIdleConns:        *clients,
		MaxIdleConnsPerHost: *clients,
		MaxConnsPerHost:     *clients,
		DisableCompression:  true,
	}
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}

	var phase atomic.Int32
	var errors atomic.Int64
	latencies := make([][]time.Duration, *clients)
	var wg sync.WaitGroup
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			url := fmt.Sprintf("http://%s/work?id=%d", server, c)
			lat := make([]time.Duration, 0, 1<<16)
			for phase.Load() != phaseDone {
				start := time.Now()
				ok := get(client, url)
				took := time.Since(start)
				if phase.Load() != phaseMeasure {
					continue
				}
				if !ok {
					errors.Add(1)
					continue
				}
				lat = append(lat, took)
			}
			latencies[c] = lat
		}(c)
	}

	time.Sleep(*warmup)
	fmt.Println("WARM")
	os.Stdout.Sync()
	if *waitStart {
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintf(os.Stderr, "waiting for the start line: %v\n", err)
			os.Exit(1)
		}
	}
	start := time.Now()
	phase.Store(phaseMeasure)
	time.Sleep(*duration)
	phase.Store(phaseDone)
	secs := time.Since(start).Seconds()
	wg.Wait()

	var all []time.Duration
	for _, l := range latencies {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	fmt.Printf("REQS %d RPS %.0f P50_US %d P99_US %d ERRORS %d\n",
		len(all), float64(len(all))/secs,
		quantile(all, 0.50).Microseconds(), quantile(all, 0.99).Microseconds(),
		errors.Load())
	os.Stdout.Sync()
}

// get does one request and reads the whole body (so the connection is
// reused); reports whether it got a 200.
func get(client *http.Client, url string) bool {
	resp, err := client.Get(url)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK
}

// quantile of sorted durations (nearest rank); 0 when there are none.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return sorted[i]
}
