//! Set-up and build: installs what is missing, idempotently, into per-user
//! locations only, then builds the release binaries.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context, Result, bail};

use crate::util::{self, step};

/// The bpf-linker release that links our eBPF object. Its LLVM must be the
/// one nightly rustc uses, so it is built against nightly's own libLLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// LLVM majors bpf-linker 0.13 has a feature for.
const BPF_LINKER_LLVM_MAJORS: [u32; 3] = [21, 22, 23];

pub struct Built {
    pub root: PathBuf,
    pub tracer: PathBuf,
    pub load_helper: PathBuf,
    path_env: OsString,
}

impl Built {
    /// `cargo` in the workspace, with bpf-linker on PATH.
    pub fn cargo(&self) -> Command {
        let mut cmd = Command::new(cargo_program());
        cmd.current_dir(&self.root).env("PATH", &self.path_env);
        cmd
    }

    /// Paths of the compiled integration test binaries of `tests/`.
    pub fn integration_test_binaries(&self) -> Result<Vec<PathBuf>> {
        let output = self
            .cargo()
            .args(["test", "--release", "-p", "tracer-tests", "--no-run", "--message-format=json"])
            .stderr(Stdio::inherit())
            .output()
            .context("building the integration tests")?;
        if !output.status.success() {
            bail!("building the integration tests failed");
        }
        let mut binaries = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let is_test = msg["profile"]["test"].as_bool() == Some(true);
            let is_integration = msg["target"]["kind"][0].as_str() == Some("test");
            if let (true, true, Some(exe)) = (is_test, is_integration, msg["executable"].as_str()) {
                binaries.push(PathBuf::from(exe));
            }
        }
        if binaries.is_empty() {
            bail!("no integration test binaries were built");
        }
        Ok(binaries)
    }
}

fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("tracer"));
    }
    let home = std::env::var_os("HOME").context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("tracer"))
}

fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The nightly toolchain's sysroot; nightly is what builds eBPF in Rust.
fn nightly_sysroot() -> Result<PathBuf> {
    if util::which("rustup").is_none() {
        bail!("rustup is not installed; install it (https://rustup.rs), then `rustup toolchain install nightly --component rust-src`");
    }
    let sysroot = capture(Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]))
        .context("the nightly Rust toolchain is missing: install it with `rustup toolchain install nightly --component rust-src`")?;
    Ok(PathBuf::from(sysroot))
}

fn ensure_rust_src(sysroot: &Path) -> Result<()> {
    let core_src = sysroot.join("lib/rustlib/src/rust/library/core");
    if core_src.is_dir() {
        eprintln!("    rust-src for nightly: present");
        return Ok(());
    }
    eprintln!("    rust-src for nightly: installing");
    let status = Command::new("rustup")
        .args(["component", "add", "rust-src", "--toolchain", "nightly"])
        .status()
        .context("running rustup")?;
    if !status.success() || !core_src.is_dir() {
        bail!("could not install rust-src: run `rustup component add rust-src --toolchain nightly`");
    }
    Ok(())
}

/// nightly's libLLVM (e.g. `libLLVM-22-rust-1.97.0-nightly.so`): its name
/// and LLVM major version.
fn nightly_llvm(sysroot: &Path) -> Result<(String, u32)> {
    let lib = sysroot.join("lib");
    let entries = std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_prefix("lib").and_then(|n| n.strip_suffix(".so"))
            && stem.starts_with("LLVM-")
            && stem.contains("-rust-")
        {
            let major = stem["LLVM-".len()..]
                .split('-')
                .next()
                .and_then(|m| m.parse().ok())
                .with_context(|| format!("cannot read the LLVM version in {name}"))?;
            return Ok((stem.to_owned(), major));
        }
    }
    bail!(
        "nightly ships no libLLVM in {}: reinstall it with `rustup toolchain install nightly --force`",
        lib.display()
    )
}

/// bpf-linker built against nightly's libLLVM, cached per (version, LLVM).
fn ensure_bpf_linker(sysroot: &Path) -> Result<PathBuf> {
    let (llvm_lib, llvm_major) = nightly_llvm(sysroot)?;
    if !BPF_LINKER_LLVM_MAJORS.contains(&llvm_major) {
        bail!(
            "nightly uses LLVM {llvm_major}, which bpf-linker {BPF_LINKER_VERSION} does not support; \
             install a nightly built with LLVM {BPF_LINKER_LLVM_MAJORS:?}"
        );
    }
    let root = cache_dir()?.join("bpf-linker").join(format!("{BPF_LINKER_VERSION}-{llvm_lib}"));
    let bin = root.join("bin");
    let linker = bin.join("bpf-linker");
    if let Some(version) = capture(Command::new(&linker).arg("--version"))
        && version.contains(BPF_LINKER_VERSION)
    {
        eprintln!("    bpf-linker: {} ({version})", linker.display());
        return Ok(bin);
    }
    eprintln!(
        "    bpf-linker {BPF_LINKER_VERSION}: building against nightly's {llvm_lib} into {} (about a minute)",
        root.display()
    );
    let lib_dir = sysroot.join("lib");
    let rustflags = format!(
        "-L {dir} -l dylib={llvm_lib} -C link-arg=-Wl,-rpath,{dir}",
        dir = lib_dir.display()
    );
    let status = Command::new("rustup")
        .args(["run", "stable", "cargo", "install", "--locked", "--force", "--root"])
        .arg(&root)
        .args(["bpf-linker", "--version", BPF_LINKER_VERSION, "--no-default-features", "--features"])
        .arg(format!("llvm-{llvm_major},no-llvm-linking"))
        .env("RUSTFLAGS", rustflags)
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!(
            "building bpf-linker failed (see above); it needs a C compiler (`apt-get install gcc`) and access to crates.io"
        );
    }
    if capture(Command::new(&linker).arg("--version")).is_none() {
        bail!("the bpf-linker just built at {} does not run", linker.display());
    }
    Ok(bin)
}

/// Version of the Python HdrHistogram library the report test decodes with.
const PY_HDRHISTOGRAM: &str = "hdrhistogram==0.10.8";

/// A Python with the reference HdrHistogram decoder, in a per-user venv, so
/// the tests can prove the report's `hdr` is readable outside Rust.
pub fn python_hdr_decoder() -> Result<PathBuf> {
    python_venv("py-hdrhistogram-0.10.8", "python HdrHistogram", &[PY_HDRHISTOGRAM], "hdrh.histogram")
}

/// The OpenTelemetry project's own Python protobuf definitions (and the
/// protobuf runtime they were generated for), which the OTLP test's
/// receiver decodes tracer's exports with.
const PY_OTLP: [&str; 2] = ["opentelemetry-proto==1.45.2", "protobuf==7.36.2"];

/// A Python with the official OTLP protobuf definitions, in a per-user venv.
pub fn python_otlp_decoder() -> Result<PathBuf> {
    python_venv(
        "py-opentelemetry-proto-1.45.2",
        "python opentelemetry-proto",
        &PY_OTLP,
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
    )
}

/// Perfetto's own Python schema (its generated perfetto_trace_pb2) and the
/// protobuf runtime it was generated for, which the Perfetto test decodes
/// tracer's traces with. (The package's trace processor downloads its
/// binary at run time, so the test applies its rules itself.)
const PY_PERFETTO: [&str; 2] = ["perfetto==0.59.1", "protobuf==7.36.2"];

/// A Python with Perfetto's protobuf definitions, in a per-user venv.
pub fn python_perfetto_decoder() -> Result<PathBuf> {
    python_venv("py-perfetto-0.59.1", "python perfetto", &PY_PERFETTO, "perfetto.protos.perfetto.trace.perfetto_trace_pb2")
}

/// A venv under the cache holding `packages` (pinned), created once; ready
/// when `module` imports. Returns its interpreter.
fn python_venv(dir: &str, what: &str, packages: &[&str], module: &str) -> Result<PathBuf> {
    let venv = cache_dir()?.join(dir);
    let python = venv.join("bin/python3");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if ready() {
        eprintln!("    {what}: {}", venv.display());
        return Ok(python);
    }
    eprintln!("    {what}: installing {} into {}", packages.join(" "), venv.display());
    let python3 = util::which("python3")
        .context("python3 is missing: install it (`apt-get install python3 python3-venv`)")?;
    util::run_checked(Command::new(python3).args(["-m", "venv"]).arg(&venv))
        .context("creating a Python venv failed: install python3-venv")?;
    util::run_checked(
        Command::new(venv.join("bin/pip")).args(["install", "-q", "--disable-pip-version-check"]).args(packages),
    )
    .with_context(|| format!("installing {} from PyPI failed", packages.join(" ")))?;
    if !ready() {
        bail!("{} cannot import {module} after installation", python.display());
    }
    Ok(python)
}

/// Installs what is missing and builds tracer and the test workload helper.
pub fn build() -> Result<Built> {
    let root = workspace_root();
    let bpf_linker_dir = step("checking the eBPF toolchain (nightly, rust-src, bpf-linker)", || {
        let sysroot = nightly_sysroot()?;
        ensure_rust_src(&sysroot)?;
        ensure_bpf_linker(&sysroot)
    })?;
    let mut paths = vec![bpf_linker_dir];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    let path_env = std::env::join_paths(paths).context("PATH contains an invalid entry")?;
    let built = Built {
        tracer: root.join("target/release/tracer"),
        load_helper: root.join("target/release/tracer-load"),
        root,
        path_env,
    };
    step("building target/release/tracer and libtracer_span.so (release)", || {
        let mut cargo = built.cargo();
        cargo.args(["build", "--release", "-p", "tracer-user", "-p", "tracer-tests", "-p", "tracer-span"]);
        util::run_checked(&mut cargo)
    })?;
    Ok(built)
}
