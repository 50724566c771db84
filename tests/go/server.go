// A Go net/http server for the integration tests: the runtime multiplexes
// goroutines over a few OS threads (M:N), so a request can be read on one
// thread and answered on another. Prints "ready PORT" once listening.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("hello\n"))
	})
	fmt.Printf("ready %d\n", listener.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	if err := http.Serve(listener, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
