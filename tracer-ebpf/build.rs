/// Rebuild the eBPF object when the linker changes (a new bpf-linker or a
/// new nightly LLVM can change the generated code).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // bpf-linker asks LLVM to expand only `memcpy`, in order
    // (`--bpf-expand-memcpy-in-order`), which leaves every `memset` and
    // `memmove` the compiler emits (zeroing a record, copying totals) to
    // library functions that run byte by byte: a 136-byte record costs ~400
    // instructions per run. Without it LLVM writes them as word stores.
    println!("cargo:rustc-link-arg-bins=--disable-expand-memcpy-in-order");
}
