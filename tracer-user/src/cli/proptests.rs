//! Generated command lines: every flag that takes a value, given values
//! that are huge, negative, not a number or empty, must be accepted or
//! refused by the parser, never panic there or later in a conversion.
use clap::Parser;
use proptest::prelude::*;

use super::{Cli, Command};

/// Every command with the flags of it that take a value.
const COMMANDS: &[(&[&str], &[&str])] = &[
    (&[], &["-p", "-i", "--max-threads"]),
    (&["runqlat"], &["-p", "--tid", "-c", "--json"]),
    (&["syscalls"], &["-p", "--tid", "--top", "-s"]),
    (&["biolat"], &["-p", "--device"]),
    (&["offcpu"], &["-p", "--tid"]),
    (&["record", "--out", "r.json"], &["-p", "--tid", "-c", "-d", "--duration"]),
    (&["spans", "-p", "1"], &["--slow", "--contention-threshold", "-d", "--expire-after"]),
    (&["spans", "join", "--timeline", "t", "--spans", "s"], &["--contention-threshold", "--json"]),
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NaN".to_owned()),
        Just("-inf".to_owned()),
        Just("1e30".to_owned()),
        Just("1e19".to_owned()),
        Just("18446744073709551616".to_owned()),
        any::<f64>().prop_map(|f| f.to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|i| i.to_string()),
        "[0-9eE.+-]{1,12}",
    ]
}

/// A command line: a command, some of its flags with generated values,
/// and (for the live commands) generated INTERVAL and COUNT positionals.
fn command_line() -> impl Strategy<Value = Vec<String>> {
    let flags = prop::collection::vec((any::<prop::sample::Index>(), value(), any::<bool>()), 0..4);
    (0..COMMANDS.len(), flags, prop::collection::vec(value(), 0..3))
        .prop_map(|(command, flags, positionals)| {
            let (prefix, flag_names) = COMMANDS[command];
            let mut args: Vec<String> = std::iter::once("tracer").chain(prefix.iter().copied()).map(str::to_owned).collect();
            for (flag, value, joined) in flags {
                let flag = flag_names[flag.index(flag_names.len())];
                // `--flag=-1` reaches the value parser; `--flag -1` is
                // refused earlier, as an unknown flag.
                if joined {
                    args.push(format!("{flag}={value}"));
                } else {
                    args.push(flag.to_owned());
                    args.push(value);
                }
            }
            if (1..=4).contains(&command) {
                args.extend(positionals);
            }
            args
        })
}

/// What the commands do with the parsed times before any probe is
/// loaded: the conversions that would panic on an unbounded value.
fn convert(cli: &Cli) {
    let later = std::time::Instant::now();
    let _ = later + std::time::Duration::from_secs_f64(cli.tui.interval);
    match &cli.command {
        Some(Command::Record(a)) => {
            let _ = a.duration.map(|d| later + d);
        }
        Some(Command::Spans(a)) => {
            let _ = a.duration.map(|d| later + d);
            let _ = later + a.expire_after;
            let _ = a.slow.map(|ms| std::time::Duration::from_secs_f64(ms / 1e3));
        }
        Some(Command::Runqlat(a)) => {
            let _ = a.output.interval.map(|secs| later + std::time::Duration::from_secs(secs));
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn command_lines_parse_or_fail_without_panicking(args in command_line()) {
        if let Ok(cli) = Cli::try_parse_from(&args) {
            convert(&cli);
        }
    }
}
