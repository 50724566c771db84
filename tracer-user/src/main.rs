//! `tracer`: where did the time of this process, this thread, go? Parses
//! the command line and hands it to the library.
use clap::Parser as _;
use tracer_user::{
    cli::{Cli, Command, SpansCommand, TimelineCommand},
    commands, tui,
};

/// Turns off glibc's fast bins. A drain frees thousands of small blocks
/// (span lines' strings and lists); fast bins keep them apart until the
/// next larger request walks them all to merge them, and at 30,000 spans/s
/// those walks were 8% of the tracer's samples (`malloc_consolidate`,
/// from reading a /proc file). Without them, the thread cache still takes
/// the common sizes, and the rest merge as they are freed: the tracer's
/// CPU there went from 8.2% to 7.5% of a CPU (docs/performance.md).
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets a malloc parameter; M_MXFAST 0 is in its
    // documented range, and no other thread allocates yet.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version go to stdout as clap prints them.
        Err(err) if !err.use_stderr() || err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            err.exit()
        }
        Err(err) => {
            tracer_user::say!("{}", tracer_user::cli::one_line(&err));
            return std::process::ExitCode::from(err.exit_code() as u8);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("tracer: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // Every command but the offline ones (join, export) records until a signal ends
        // it; its signals must end the run from the first moment.
        let offline = matches!(&cli.command, Some(Command::Spans(args)) if args.command.is_some())
            || matches!(&cli.command, Some(Command::Timeline(_)));
        if !offline {
            tracer_user::app::events::listen_early()?;
        }
        match &cli.command {
            Some(Command::Runqlat(args)) => commands::runqlat(&cli.kernel, args).await,
            Some(Command::Runqlen(args)) => commands::runqlen(&cli.kernel, args).await,
            Some(Command::Record(args)) => commands::record(&cli.kernel, args).await,
            Some(Command::Syscalls(args)) => commands::syscalls(&cli.kernel, args).await,
            Some(Command::Biolat(args)) => commands::biolat(&cli.kernel, args).await,
            Some(Command::Offcpu(args)) => commands::offcpu(&cli.kernel, args).await,
            Some(Command::Serve(args)) => commands::serve(&cli.kernel, args).await,
            Some(Command::Floor) => commands::floor().await,
            Some(Command::Spans(args)) => match &args.command {
                Some(SpansCommand::Join(join)) => commands::join(join),
                None => commands::spans(&cli.kernel, args).await,
            },
            Some(Command::Timeline(args)) => match &args.command {
                TimelineCommand::Export(export) => commands::export(export),
            },
            None => tui::run(&cli.kernel, &cli.tui).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error and its causes.
            let causes: Vec<String> = err.chain().map(ToString::to_string).collect();
            tracer_user::say!("tracer: {}", causes.join(": "));
            std::process::ExitCode::FAILURE
        }
    }
}
