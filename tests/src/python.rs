//! The Python interpreters of the format owners' reference decoders, which
//! `cargo xtask test` installs in venvs and names in the environment.
use crate::bpf_available;

/// The interpreter in `var`, or None (the test is skipped) when BPF is not
/// available or the variable is unset outside `cargo xtask test`.
pub fn reference_python(test: &str, var: &str) -> Option<String> {
    if !bpf_available(test) {
        return None;
    }
    match std::env::var(var) {
        Ok(python) => Some(python),
        Err(_) if std::env::var("TRACER_REQUIRE_BPF").as_deref() == Ok("1") => {
            panic!("{var} is not set: run the tests with `cargo xtask test`")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: {var} not set (run `cargo xtask test`)");
            None
        }
    }
}

/// What `tests/perfetto_decode.py` (Perfetto's own schema, in the venv
/// `cargo xtask test` installs) says the trace at `trace` holds.
pub fn perfetto_decode(python: &str, trace: &std::path::Path) -> serde_json::Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("perfetto_decode.py");
    let out = std::process::Command::new(python).arg(&script).arg(trace).output().expect("running the decoder");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the decoder's JSON")
}

/// The slice of span `id` in a trace `perfetto_decode` decoded.
pub fn slice_of(decoded: &serde_json::Value, id: u64) -> &serde_json::Value {
    let slices = decoded["slices"].as_array().expect("slices");
    slices
        .iter()
        .find(|s| crate::u(&s["args"]["span_id"]) == id)
        .unwrap_or_else(|| panic!("no slice of span {id}: {slices:?}"))
}
