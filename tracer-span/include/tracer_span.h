/*
 * Request span markers for tracer (https://... this repository).
 *
 * Call tracer_span_begin() when a thread starts working on a request and
 * tracer_span_end() with the same id when it is done. With no tracer
 * attached each call costs a function call, a load and a branch.
 * `tracer spans -p PID` turns the markers on in the running process: each
 * call then appends a record to a ring in the library's own memory, which
 * the tracer reads (no trap into the kernel); with --marker-uprobes (and
 * by default with --http) it attaches uprobes to the two functions
 * instead. It breaks each span's
 * wall time down into on-CPU, run-queue wait, I/O wait, other waits and
 * sleep, from the kernel's scheduler events.
 *
 * Link with -ltracer_span (target/release/libtracer_span.so), or load it
 * with dlopen / ctypes / cgo. Ids must be unique among the process's open
 * spans; `name` (at most 31 bytes are kept) names the kind of request.
 */
#ifndef TRACER_SPAN_H
#define TRACER_SPAN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void tracer_span_begin(uint64_t span_id, const char *name);
void tracer_span_end(uint64_t span_id);

#ifdef __cplusplus
}
#endif

#endif /* TRACER_SPAN_H */
