//! Terminal set-up and restoration. The guard restores the terminal when it
//! is dropped (normal exit, error, or unwinding), and ratatui's panic hook
//! restores it before a panic message is printed, so no exit path leaves
//! the terminal in raw mode or on the alternate screen.
use ratatui::DefaultTerminal;

pub struct TerminalGuard {
    pub terminal: DefaultTerminal,
}

impl TerminalGuard {
    pub fn enter() -> std::io::Result<TerminalGuard> {
        let terminal = ratatui::try_init()?;
        Ok(TerminalGuard { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}
