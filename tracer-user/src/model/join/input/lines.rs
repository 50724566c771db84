//! Lines of the spans input, read with a bound: whatever the input (a
//! huge file, a pipe, /dev/zero), at most one line's worth of it is held.
use std::io::{self, BufRead};

/// What [`read_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line, without its end, is in the buffer.
    Whole,
    /// The line is longer than the limit: the buffer holds its first
    /// `limit + 1` bytes, and the rest is still unread.
    Long,
    /// The input ended.
    End,
}

/// The next bytes buffered from `input`; a signal while reading a pipe is
/// no error: it reads again.
fn fill(input: &mut impl BufRead) -> io::Result<&[u8]> {
    // Retried until the result is not an interruption; the final call
    // returns what the last one buffered (the borrow checker cannot return
    // from inside the loop).
    while matches!(input.fill_buf(), Err(e) if e.kind() == io::ErrorKind::Interrupted) {}
    input.fill_buf()
}

/// Reads the next line into `buf` (cleared first) if it has at most
/// `limit` bytes; of a longer one, only its first `limit + 1` bytes.
pub(super) fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, limit: usize) -> io::Result<Line> {
    buf.clear();
    let mut any = false;
    loop {
        let available = fill(input)?;
        if available.is_empty() {
            // A last line without a line end is still a line.
            return Ok(if any { Line::Whole } else { Line::End });
        }
        any = true;
        let room = limit + 1 - buf.len();
        let window = &available[..available.len().min(room)];
        if let Some(end) = window.iter().position(|&b| b == b'\n') {
            buf.extend_from_slice(&window[..end]);
            input.consume(end + 1);
            return Ok(Line::Whole);
        }
        let taken = window.len();
        buf.extend_from_slice(window);
        input.consume(taken);
        if buf.len() > limit {
            return Ok(Line::Long);
        }
    }
}

/// Skips the rest of a [`Line::Long`], reading at most `limit` more bytes;
/// false if its end did not come within them.
pub(super) fn skip_rest(input: &mut impl BufRead, limit: u64) -> io::Result<bool> {
    let mut skipped = 0u64;
    loop {
        let available = fill(input)?;
        if available.is_empty() {
            return Ok(true);
        }
        if let Some(end) = available.iter().position(|&b| b == b'\n') {
            input.consume(end + 1);
            return Ok(true);
        }
        let taken = available.len();
        input.consume(taken);
        skipped += taken as u64;
        if skipped > limit {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;

    /// Hands out `data` a few bytes at a time, as a pipe might.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn lines(text: &[u8], limit: usize) -> Vec<(Line, String)> {
        let mut input = BufReader::with_capacity(4, Trickle(text));
        let mut buf = Vec::new();
        let mut found = Vec::new();
        loop {
            let line = read_line(&mut input, &mut buf, limit).unwrap();
            found.push((line, String::from_utf8_lossy(&buf).into_owned()));
            match line {
                Line::End => return found,
                Line::Long => assert!(skip_rest(&mut input, 100).unwrap()),
                Line::Whole => {}
            }
        }
    }

    #[test]
    fn lines_up_to_the_limit_are_whole_longer_ones_cut() {
        let found = lines(b"12345\n123456\n\n1234567890123\nlast", 6);
        assert_eq!(
            found,
            [
                (Line::Whole, "12345".into()),
                (Line::Whole, "123456".into()),
                (Line::Whole, String::new()),
                (Line::Long, "1234567".into()),
                (Line::Whole, "last".into()),
                (Line::End, String::new()),
            ]
        );
        assert_eq!(lines(b"", 6), [(Line::End, String::new())]);
        assert_eq!(lines(b"1234567\n", 6), [(Line::Long, "1234567".into()), (Line::End, String::new())]);
    }

    #[test]
    fn skipping_gives_up_after_its_limit() {
        let endless = io::repeat(0);
        let mut input = BufReader::with_capacity(64, endless.take(10_000));
        assert!(!skip_rest(&mut input, 1000).unwrap(), "no line end in 1000 bytes");
        let mut input = BufReader::new(&b"rest of the line\nnext"[..]);
        assert!(skip_rest(&mut input, 1000).unwrap());
        let mut next = String::new();
        input.read_to_string(&mut next).unwrap();
        assert_eq!(next, "next");
    }
}
