//! Terminal set-up and restoration. The guard restores the terminal when it
//! is dropped (quit, signal, error, or unwinding), and a panic hook
//! restores it before the panic message is printed, so no exit path that
//! can be caught leaves the terminal raw or on the alternate screen.
//!
//! After SIGHUP the terminal may be gone, and every write to it fails:
//! restoring then tries each step, ignores the failures and prints nothing
//! (printing to a terminal that is gone would panic). ratatui's own
//! `restore` and its terminal's `Drop` print their failures, so neither is
//! used.
use std::{
    io,
    mem::ManuallyDrop,
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use ratatui::{
    DefaultTerminal, Terminal,
    backend::CrosstermBackend,
    crossterm::{
        cursor::Show,
        execute,
        terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
    },
};

/// Whether the terminal has been set up and not restored yet: restoring
/// happens once, from the guard or from the panic hook, whichever runs
/// first.
static SET_UP: AtomicBool = AtomicBool::new(false);

pub struct TerminalGuard {
    /// Never dropped: its `Drop` would show the cursor and print (so panic)
    /// if that fails; [`restore`] shows it.
    pub terminal: ManuallyDrop<DefaultTerminal>,
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        SET_UP.store(true, Ordering::SeqCst);
        match set_up() {
            Ok(terminal) => Ok(TerminalGuard { terminal: ManuallyDrop::new(terminal) }),
            Err(err) => {
                restore();
                Err(err)
            }
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

fn set_up() -> io::Result<DefaultTerminal> {
    enable_raw_mode()?;
    execute!(io::stdout(), EnterAlternateScreen)?;
    Terminal::new(CrosstermBackend::new(io::stdout()))
}

/// Leaves raw mode and the alternate screen and shows the cursor, each
/// tried whatever became of the others; never fails, panics or prints.
fn restore() {
    if !SET_UP.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

/// Restores the terminal before the previous hook prints the panic, so the
/// message lands on the normal screen.
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
