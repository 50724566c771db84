/// Rebuild the eBPF object when the linker changes (a new bpf-linker or a
/// new nightly LLVM can change the generated code).
fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
