// A Go net/http server for the integration tests: the runtime multiplexes
// goroutines over a few OS threads (M:N), so a request can be read on one
// thread and answered on another. It speaks HTTP/1.1 and HTTP/2 in
// cleartext (h2c: with prior knowledge, or after an HTTP/1.1
// `Upgrade: h2c`). Prints "ready PORT" once listening.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello\n"))
	})
	// /sleep?ms=N answers after N milliseconds asleep.
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("slept\n"))
	})
	fmt.Printf("ready %d\n", listener.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if err := http.Serve(listener, h2c.NewHandler(mux, &http2.Server{})); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
