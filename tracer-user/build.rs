//! Builds the eBPF object from `tracer-ebpf` (nightly + bpf-linker) with
//! aya-build, for `include_bytes_aligned!` in the loader.
//!
//! Without bpf-linker (a plain `cargo test` on stable) an empty object is
//! embedded instead, so everything that does not load programs still builds
//! and tests; such a binary says how to build it properly when run.
use std::{env, fs, path::PathBuf};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-env-changed=PATH");
    if which_bpf_linker().is_none() {
        println!(
            "cargo:warning=bpf-linker not found: building without eBPF programs (run `cargo xtask build` for a working tracer)"
        );
        fs::write(out_dir.join("tracer"), [])?;
        return Ok(());
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let ebpf_dir = manifest_dir.join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().expect("UTF-8 path");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}

fn which_bpf_linker() -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join("bpf-linker"))
        .find(|candidate| candidate.is_file())
}
