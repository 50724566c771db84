//! A span as its JSON line, written field by field: the same bytes as
//! `serde_json::to_writer` of the derived `Serialize` (a test holds the two
//! together), at under half the cost. At tens of thousands of spans a
//! second the derived path was a quarter of the tracer's own CPU, most of
//! it escaping the fixed key names byte by byte.
use crate::model::{
    http::HttpFields,
    names::CpuLimit,
    spans::{DownstreamWait, Holder, SpanRecord, SyscallTime},
};

/// An object's key as written: `"name":`, one copy of a length known
/// when compiled (moves, not a call to `memcpy`).
macro_rules! key {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// Appends `span` as one JSON object (no newline) to `out`.
pub fn write_span(out: &mut Vec<u8>, span: &SpanRecord) {
    let mut o = Object::open(out);
    o.opt_str(key!("trace_id"), span.trace_id.as_deref());
    o.uint(key!("span_id"), span.span_id);
    if let Some(parent) = span.parent_span_id {
        o.uint(key!("parent_span_id"), parent);
    }
    if let Some(pid) = span.parent_pid {
        o.uint(key!("parent_pid"), pid.into());
    }
    o.raw_str(key!("kind"), span.kind.name());
    o.str(key!("name"), &span.name);
    o.uint(key!("pid"), span.pid.into());
    o.uint(key!("tid"), span.tid.into());
    o.uint(key!("start_unix_ns"), span.start_unix_ns);
    o.uint(key!("wall_ns"), span.wall_ns);
    o.uint(key!("on_cpu_ns"), span.on_cpu_ns);
    o.uint(key!("wakeup_idle_ns"), span.wakeup_idle_ns);
    o.uint(key!("runq_wait_ns"), span.runq_wait_ns);
    o.uint(key!("throttled_ns"), span.throttled_ns);
    o.uint(key!("stolen_ns"), span.stolen_ns);
    o.uint(key!("iowait_ns"), span.iowait_ns);
    o.uint(key!("uninterruptible_ns"), span.uninterruptible_ns);
    o.uint(key!("sleep_ns"), span.sleep_ns);
    o.uint(key!("downstream_ns"), span.downstream_ns);
    if !span.downstream.is_empty() {
        o.array(key!("downstream"), &span.downstream, write_downstream);
    }
    o.uint(key!("between_threads_ns"), span.between_threads_ns);
    if let Some(verdict) = &span.downstream_verdict {
        o.str(key!("downstream_verdict"), verdict);
    }
    o.uint(key!("unaccounted_ns"), span.unaccounted_ns);
    o.uint(key!("syscall_ns"), span.syscall_ns);
    o.array(key!("top_syscalls"), &span.top_syscalls, write_syscall);
    o.uint(key!("migrations"), span.migrations);
    o.uint(key!("voluntary_switches"), span.voluntary_switches);
    o.uint(key!("involuntary_switches"), span.involuntary_switches);
    o.raw_str(key!("verdict"), span.verdict.name());
    if let Some(limit) = &span.throttle {
        o.key(key!("throttle"));
        write_limit(o.out, limit);
    }
    o.array(key!("blame"), &span.blame, write_holder);
    o.bool(key!("moved_between_threads"), span.moved_between_threads);
    o.uint(key!("tid_end"), span.tid_end.into());
    if let Some(why) = &span.no_breakdown {
        o.str(key!("no_breakdown"), why);
    }
    if let Some(http) = &span.http {
        write_http_fields(&mut o, http);
    }
    o.close();
}

/// `HttpFields` flattened into the span's object, as `#[serde(flatten)]` does.
fn write_http_fields(o: &mut Object<'_>, http: &HttpFields) {
    o.str(key!("http_method"), &http.http_method);
    o.str(key!("http_path"), &http.http_path);
    match http.http_status {
        Some(status) => o.uint(key!("http_status"), status.into()),
        None => o.null(key!("http_status")),
    }
    o.opt_str(key!("request_id"), http.request_id.as_deref());
    if let Some(peer) = &http.peer {
        o.str(key!("peer"), peer);
    }
    if let Some(bytes) = http.response_bytes {
        o.uint(key!("response_bytes"), bytes);
    }
}

fn write_downstream(out: &mut Vec<u8>, wait: &DownstreamWait) {
    let mut o = Object::open(out);
    o.str(key!("peer"), &wait.peer);
    o.uint(key!("count"), wait.count.into());
    o.uint(key!("ns"), wait.ns);
    o.close();
}

fn write_syscall(out: &mut Vec<u8>, syscall: &SyscallTime) {
    let mut o = Object::open(out);
    o.str(key!("name"), &syscall.name);
    o.uint(key!("count"), syscall.count.into());
    o.uint(key!("ns"), syscall.ns);
    o.close();
}

fn write_holder(out: &mut Vec<u8>, holder: &Holder) {
    let mut o = Object::open(out);
    o.uint(key!("pid"), holder.pid.into());
    o.str(key!("comm"), &holder.comm);
    o.opt_str(key!("cgroup"), holder.cgroup.as_deref());
    o.uint(key!("ns"), holder.ns);
    o.close();
}

fn write_limit(out: &mut Vec<u8>, limit: &CpuLimit) {
    let mut o = Object::open(out);
    o.str(key!("cgroup"), &limit.cgroup);
    o.str(key!("cpu_max"), &limit.cpu_max);
    o.close();
}

/// A JSON object being written: keys are this file's own literals (plain
/// ASCII, nothing to escape, made by `key!`), string values go through
/// serde_json's escaping.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>) -> Object<'a> {
        out.push(b'{');
        Object { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// `key` as made by `key!`.
    #[inline(always)]
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(key.as_bytes());
    }

    #[inline(always)]
    fn uint(&mut self, key: &str, value: u64) {
        self.key(key);
        self.out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    #[inline(always)]
    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
    }

    #[inline(always)]
    fn null(&mut self, key: &str) {
        self.key(key);
        self.out.extend_from_slice(b"null");
    }

    /// A string value: as it is when nothing in it needs escaping (names,
    /// paths: nearly always), else escaped by serde_json.
    #[inline(always)]
    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.out.push(b'"');
            self.out.extend_from_slice(value.as_bytes());
            self.out.push(b'"');
        } else {
            serde_json::to_writer(&mut *self.out, value).expect("a string serializes into memory");
        }
    }

    /// A value known to need no escaping (an enum's name).
    #[inline(always)]
    fn raw_str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    #[inline(always)]
    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    fn array<T>(&mut self, key: &str, items: &[T], write: fn(&mut Vec<u8>, &T)) {
        self.key(key);
        self.out.push(b'[');
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write(self.out, item);
        }
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        http::HttpFields,
        spans::{SpanKind, Verdict, test_span},
    };

    fn line(span: &SpanRecord) -> String {
        let mut out = Vec::new();
        write_span(&mut out, span);
        String::from_utf8(out).unwrap()
    }

    /// Every optional field set, strings that need escaping, both HTTP
    /// fields that are skipped when absent present.
    fn everything() -> SpanRecord {
        let mut span = test_span(30, 10, 15, Verdict::CpuThrottled);
        span.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        span.parent_span_id = Some(7);
        span.parent_pid = Some(42);
        span.kind = SpanKind::Client;
        span.name = "GET /a\"b\\c\n\u{1}é".into();
        span.top_syscalls = vec![SyscallTime { name: "read\u{7f}".into(), count: 3, ns: u64::MAX }];
        span.downstream = vec![DownstreamWait { peer: "127.0.0.1:8001".into(), count: 2, ns: 5 }; 2];
        span.downstream_verdict = Some("cpu-contention".into());
        span.throttle = Some(CpuLimit { cgroup: "/a/b".into(), cpu_max: "20000 100000".into() });
        span.blame = vec![
            Holder { pid: 1, comm: "tab\there".into(), cgroup: Some("/x".into()), ns: 9 },
            Holder { pid: 2, comm: "(idle)".into(), cgroup: None, ns: 0 },
        ];
        span.moved_between_threads = true;
        span.no_breakdown = Some("moved".into());
        span.http = Some(HttpFields {
            http_method: "POST".into(),
            http_path: "/x?y=1".into(),
            http_status: Some(503),
            request_id: Some("req-1".into()),
            trace_id: Some("skipped in JSON".into()),
            parent_span_id: Some("skipped too".into()),
            peer: Some("[::1]:80".into()),
            response_bytes: Some(0),
            ..HttpFields::default()
        });
        span
    }

    #[test]
    fn lines_are_the_bytes_serde_writes() {
        let full = everything();
        let mut bare = test_span(5, 5, 0, Verdict::OnCpu);
        bare.trace_id = None;
        bare.top_syscalls.clear();
        bare.blame.clear();
        let mut http_without_options = test_span(2, 1, 1, Verdict::Moved);
        http_without_options.kind = SpanKind::Server;
        http_without_options.http = Some(HttpFields { http_method: "GET".into(), ..HttpFields::default() });
        for span in [full, bare, http_without_options] {
            assert_eq!(line(&span), serde_json::to_string(&span).unwrap());
        }
    }

    #[test]
    fn every_kind_and_verdict_is_named_as_serde_names_it() {
        for kind in [SpanKind::Internal, SpanKind::Server, SpanKind::Client] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        for verdict in Verdict::ALL {
            assert_eq!(serde_json::to_value(verdict).unwrap(), verdict.name());
        }
    }
}
