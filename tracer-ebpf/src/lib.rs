//! The kernel programs live in `main.rs` (the `tracer` eBPF object); this
//! empty library only lets `tracer-user` declare a build-dependency on this
//! package so cargo rebuilds the object when its sources change.
#![no_std]
