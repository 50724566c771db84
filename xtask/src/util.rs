//! Small process helpers: timed steps, checked commands, root escalation.
use std::{
    path::Path,
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

/// Runs one named step, saying what it does and how long it took.
pub fn step<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    eprintln!("==> {what}");
    let started = Instant::now();
    let result = f();
    let took = started.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("    done in {took:.1} s"),
        Err(_) => eprintln!("    failed after {took:.1} s"),
    }
    result
}

pub fn run_checked(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A command that runs `program` as root: directly when we are root,
/// otherwise through sudo, keeping the given environment.
pub fn as_root(program: &Path, args: &[String], env: &[(&str, String)]) -> Result<Command> {
    if is_root() {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        return Ok(cmd);
    }
    if which("sudo").is_none() {
        bail!(
            "{} needs root to load eBPF programs and sudo is not installed: run this as root",
            program.display()
        );
    }
    eprintln!("    (not root: using sudo)");
    let mut cmd = Command::new("sudo");
    cmd.arg("env");
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program).args(args);
    Ok(cmd)
}

pub fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Installs the Debian packages whose programs are missing: `needed` is
/// (program, package) pairs, where a program given by its absolute path
/// is any file the package installs (a library's); `why` says what needs
/// them, for the error.
pub fn ensure_packages(needed: &[(&str, &str)], why: &str) -> Result<()> {
    let mut missing: Vec<&str> = needed
        .iter()
        .filter(|(program, _)| {
            let file = std::path::Path::new(program);
            let installed = if file.is_absolute() {
                file.exists()
            } else {
                which(program).is_some() || std::path::Path::new("/usr/sbin").join(program).exists()
            };
            !installed
        })
        .map(|(_, package)| *package)
        .collect();
    // Several programs of one package (prometheus, promtool) name it once.
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("{why} need {}: install with `sudo apt-get install {}`", missing.join(", "), missing.join(" "));
    }
    eprintln!("    installing {}", missing.join(", "));
    run_checked(Command::new("apt-get").args(["update", "-q"]).stdout(std::process::Stdio::null()))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            // The tests start nginx with their own configuration; the package
            // must not leave a system nginx running (invoke-rc.d starts no
            // services in runlevel 1).
            .env("RUNLEVEL", "1")
            .stdout(std::process::Stdio::null()),
    )
    .with_context(|| format!("installing {}", missing.join(" ")))
}
