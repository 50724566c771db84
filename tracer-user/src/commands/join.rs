//! `tracer spans join`: spans recorded by something else, broken down
//! with a timeline recorded meanwhile. Needs neither root nor BPF.
use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Write},
    ops::ControlFlow,
    path::Path,
};

use anyhow::{Context, Result};

use crate::{
    app::otlp::{self, Exporter},
    cli::JoinArgs,
    model::{
        join::{Joiner, Skipped, input},
        spans::Verdict,
        timeline::Timeline,
    },
    output::{
        atomic::{self, OutputFile},
        otlp::Origin,
        spans_json::write_line,
        timeline_file,
    },
};

/// What the summary on standard error says, kept as the spans go by.
#[derive(Default)]
struct Tally {
    joined: usize,
    verdicts: BTreeMap<Verdict, u64>,
    skipped: Skipped,
}

pub fn join(args: &JoinArgs) -> Result<()> {
    if let Some(json) = &args.json {
        atomic::check_output_path(json)?;
    }
    let timeline = timeline_file::read(&args.timeline).context("loading the timeline")?;
    let reading = || format!("reading spans from {}", args.spans.display());
    let spans = open(&args.spans).with_context(reading)?;
    let mut exporter = match &args.otlp.otlp {
        Some(endpoint) => {
            // The recorded process is gone: its name comes from the timeline.
            let name = timeline
                .header
                .pids
                .first()
                .and_then(|pid| timeline.names.get(pid))
                .map_or_else(|| "unknown".to_owned(), |n| n.comm.to_string());
            let resource = otlp::resource(None, &name, args.otlp.service_name.as_deref());
            Some(Exporter::start(endpoint.clone(), otlp::Resources::One(resource), Origin::Joined).context("starting the OTLP exporter")?)
        }
        None => None,
    };
    let writing = |path: &std::path::Path| format!("writing span records to {}", path.display());
    let tally = match &args.json {
        Some(path) => {
            // Atomic: the file appears only once every span was joined
            // (dropped on an error, the temporary file goes away).
            let mut out = BufWriter::new(OutputFile::create(path).with_context(|| writing(path))?);
            let tally = stream(&timeline, spans, args.contention_threshold, &mut out, exporter.as_mut(), reading)?;
            let file = out.into_inner().map_err(|e| e.into_error()).with_context(|| writing(path))?;
            file.finish().with_context(|| writing(path))?;
            tally
        }
        None => {
            let mut out = BufWriter::new(std::io::stdout().lock());
            stream(&timeline, spans, args.contention_threshold, &mut out, exporter.as_mut(), reading)?
        }
    };
    summary(&timeline, &tally);
    if let Some(exporter) = exporter {
        let endpoint = exporter.endpoint().clone();
        eprintln!("{}", otlp::summary_line(&endpoint, &exporter.finish()));
    }
    Ok(())
}

/// The spans input: `-` is standard input; any other path is opened as a
/// file, a FIFO or a device included.
pub(super) fn open(path: &Path) -> io::Result<Box<dyn BufRead>> {
    if atomic::is_stdout(path) {
        return Ok(Box::new(BufReader::with_capacity(READ_BUFFER, io::stdin().lock())));
    }
    Ok(Box::new(BufReader::with_capacity(READ_BUFFER, File::open(path)?)))
}

/// Reads of the spans input: large, since a pipe or a big file is read through.
const READ_BUFFER: usize = 64 << 10;

/// Each span is read, joined and written before the next, so memory stays
/// bounded whatever the size of the input (at most one line, or one
/// multi-line OTLP document, is held: `model::join::input`).
fn stream(
    timeline: &Timeline,
    spans: impl BufRead,
    contention_threshold: f64,
    out: &mut dyn Write,
    mut exporter: Option<&mut Exporter>,
    reading: impl Fn() -> String,
) -> Result<Tally> {
    let mut joiner = Joiner::new(timeline, contention_threshold);
    let mut tally = Tally::default();
    let mut failure = None;
    input::read(spans, &mut |at, span| {
        let Some(record) = joiner.add(at, span) else { return ControlFlow::Continue(()) };
        tally.joined += 1;
        *tally.verdicts.entry(record.verdict).or_default() += 1;
        let written = write_line(out, &record);
        if let Some(exporter) = exporter.as_deref_mut() {
            exporter.send_waiting(record);
        }
        match written {
            Ok(()) => ControlFlow::Continue(()),
            // A closed pipe (`| head`) ends the reading too, rather than
            // joining the rest of the input for nothing.
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        }
    })
    .with_context(reading)?;
    match failure {
        Some(err) => Err(err),
        None => out.flush(),
    }
    .context("writing span records")?;
    tally.skipped = joiner.skipped;
    Ok(tally)
}

fn summary(timeline: &Timeline, tally: &Tally) {
    let counts: Vec<String> = tally.verdicts.iter().map(|(v, n)| format!("{n} {v}")).collect();
    let header = &timeline.header;
    let recorded_s = header.last_monotonic_ns.saturating_sub(header.first_monotonic_ns) as f64 / 1e9;
    eprintln!(
        "Joined {} of {} spans with a {recorded_s:.3} s timeline of pid {:?} ({} probes){}{}",
        tally.joined,
        tally.joined + tally.skipped.count(),
        header.pids,
        header.probe_mode,
        if counts.is_empty() { "" } else { ": " },
        counts.join(", ")
    );
    for line in tally.skipped.lines() {
        eprintln!("tracer: {line}");
    }
    if let Some(reason) = &header.truncated {
        eprintln!("tracer: note: the timeline stopped before its recording ended ({reason}); later spans are outside it");
    }
    if header.events_lost > 0 {
        eprintln!(
            "tracer: warning: the timeline lost {} events (ring buffer full); breakdowns of spans on the \
             threads concerned may be off",
            header.events_lost
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        model::timeline::fixtures::{MS, TID, history},
        output::timeline_file::tests::{scratch_dir, write},
    };

    fn args(dir: &std::path::Path, timeline: &str, spans: &str, json: &str) -> JoinArgs {
        JoinArgs {
            timeline: dir.join(timeline),
            spans: dir.join(spans),
            json: Some(dir.join(json)),
            contention_threshold: 0.3,
            otlp: Default::default(),
        }
    }

    fn error(args: &JoinArgs) -> String {
        let err = join(args).unwrap_err();
        err.chain().map(ToString::to_string).collect::<Vec<_>>().join(": ")
    }

    #[test]
    fn joins_files_into_an_atomically_written_file_or_says_what_is_wrong() {
        let dir = scratch_dir("join-command");
        write(&dir.join("t.timeline"), &history());
        let unix = 1_700_000_000_000 * MS;
        let spans = format!(
            "{{\"span_id\": 1, \"name\": \"a\", \"tid\": {TID}, \"start_unix_ns\": {}, \"end_unix_ns\": {}}}\nnot json\n",
            unix + MS,
            unix + 6 * MS
        );
        std::fs::write(dir.join("spans.jsonl"), spans).unwrap();

        join(&args(&dir, "t.timeline", "spans.jsonl", "out.jsonl")).unwrap();
        let out = std::fs::read_to_string(dir.join("out.jsonl")).unwrap();
        assert_eq!(out.lines().count(), 1, "the malformed line is skipped, the other joined: {out}");
        let record: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!((record["wall_ns"].as_u64(), record["runq_wait_ns"].as_u64()), (Some(5 * MS), Some(3 * MS)));

        let err = error(&args(&dir, "t.timeline", "missing.jsonl", "out2.jsonl"));
        assert!(err.starts_with(&format!("reading spans from {}", dir.join("missing.jsonl").display())), "{err}");
        assert!(!dir.join("out2.jsonl").exists());
        let err = error(&args(&dir, "spans.jsonl", "spans.jsonl", "out2.jsonl"));
        assert_eq!(
            err,
            format!("loading the timeline: {}: not a tracer timeline file", dir.join("spans.jsonl").display())
        );
        let err = error(&args(&dir, "t.timeline", "spans.jsonl", "no/such/dir.jsonl"));
        assert!(err.ends_with("directory does not exist"), "checked before any work: {err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
