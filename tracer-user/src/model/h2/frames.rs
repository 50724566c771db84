//! HTTP/2 frames (RFC 9113, section 4) in one direction of a connection,
//! from the bytes of its reads or writes as the kernel copied them: frames
//! cross syscalls, and bytes it did not copy (past its limit, or sent with
//! `sendfile`) can be passed over only inside a `DATA` frame's payload.

/// The client's connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
pub const FRAME_HEADER_LEN: usize = 9;
/// The largest frame a peer may allow (SETTINGS_MAX_FRAME_SIZE, 2^24 - 1):
/// a longer length means the bytes are not where a frame header should be.
const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// The longest `101` head passed over before frames (a longer one is not
/// a `101` as far as can be followed).
const MAX_SWITCH_HEAD: usize = 16 * 1024;

// Frame types and flags (RFC 9113, section 6).
pub(super) const DATA: u8 = 0x0;
pub(super) const HEADERS: u8 = 0x1;
pub(super) const RST_STREAM: u8 = 0x3;
pub(super) const SETTINGS: u8 = 0x4;
const PUSH_PROMISE: u8 = 0x5;
pub(super) const CONTINUATION: u8 = 0x9;

pub(super) const END_STREAM: u8 = 0x1;
pub(super) const END_HEADERS: u8 = 0x4;
pub(super) const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// What a span needs of a frame, once it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole header block (a `HEADERS` or `PUSH_PROMISE` frame and its
    /// `CONTINUATION`s), without padding or priority; `frame_bytes` counts
    /// its frames whole.
    Headers { stream: u32, end_stream: bool, push: bool, block: Vec<u8>, frame_bytes: u64 },
    /// A `DATA` frame whose payload ended (`len` bytes).
    Data { stream: u32, len: u64, end_stream: bool },
    Reset { stream: u32 },
}

/// The bytes are not HTTP/2 frames as far as can be followed (not a
/// preface, a length no frame can have, a `CONTINUATION` out of place, or
/// bytes not copied outside a `DATA` payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfStep;

/// The payload of a `DATA` frame still to come.
#[derive(Debug)]
struct PendingData {
    stream: u32,
    len: u64,
    left: u64,
    end_stream: bool,
}

/// A header block waiting for its `CONTINUATION` frames.
#[derive(Debug)]
struct PendingBlock {
    stream: u32,
    end_stream: bool,
    push: bool,
    block: Vec<u8>,
    frame_bytes: u64,
}

#[derive(Debug)]
pub struct FrameReader {
    /// Bytes of the preface still to pass (the client's direction).
    preface_left: usize,
    /// No frame seen yet: the first must be a `SETTINGS` (each side's
    /// preface ends with one). Anything else means the direction's start
    /// was missed (after an `Upgrade: h2c`, the server's first frames may
    /// go out before the client's preface shows the connection to be
    /// HTTP/2), and with it entries of its header table.
    first_frame: bool,
    /// The direction begins with the HTTP/1.1 `101` that switched the
    /// connection (`Upgrade: h2c`): its head, up to its blank line, is
    /// passed over first.
    switch_head: bool,
    /// Bytes of frames not complete yet (not those of `DATA` payloads), or
    /// of the `101`'s head.
    buffer: Vec<u8>,
    data: Option<PendingData>,
    block: Option<PendingBlock>,
}

impl FrameReader {
    /// A direction whose first bytes are the preface (`preface`) or frames.
    pub fn new(preface: bool) -> FrameReader {
        FrameReader {
            preface_left: if preface { PREFACE.len() } else { 0 },
            first_frame: true,
            switch_head: false,
            buffer: Vec::new(),
            data: None,
            block: None,
        }
    }

    /// The server's direction of a connection switched by a `101`: its
    /// head, then frames.
    pub fn after_switch() -> FrameReader {
        FrameReader { switch_head: true, ..FrameReader::new(false) }
    }

    /// The next bytes of the direction; the frames they complete go to `out`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), OutOfStep> {
        if self.switch_head {
            self.buffer.extend_from_slice(bytes);
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                return if self.buffer.len() > MAX_SWITCH_HEAD { Err(OutOfStep) } else { Ok(()) };
            };
            self.switch_head = false;
            let frames = self.buffer.split_off(end + 4);
            self.buffer.clear();
            return self.feed(&frames, out);
        }
        if self.preface_left > 0 {
            let n = self.preface_left.min(bytes.len());
            let from = PREFACE.len() - self.preface_left;
            if bytes[..n] != PREFACE[from..from + n] {
                return Err(OutOfStep);
            }
            self.preface_left -= n;
            bytes = &bytes[n..];
        }
        if let Some(data) = &mut self.data {
            let n = data.left.min(bytes.len() as u64);
            data.left -= n;
            bytes = &bytes[n as usize..];
            if data.left > 0 {
                return Ok(());
            }
            self.end_data(out);
        }
        self.buffer.extend_from_slice(bytes);
        let mut at = 0;
        while self.buffer.len() - at >= FRAME_HEADER_LEN {
            let header = &self.buffer[at..at + FRAME_HEADER_LEN];
            let len = usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let (kind, flags) = (header[3], header[4]);
            let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            if len > MAX_FRAME_LEN || (self.first_frame && kind != SETTINGS) {
                return Err(OutOfStep);
            }
            self.first_frame = false;
            let available = self.buffer.len() - at - FRAME_HEADER_LEN;
            if kind == DATA {
                let here = len.min(available);
                at += FRAME_HEADER_LEN + here;
                let end_stream = flags & END_STREAM != 0;
                self.data = Some(PendingData { stream, len: len as u64, left: (len - here) as u64, end_stream });
                if here < len {
                    break;
                }
                self.end_data(out);
                continue;
            }
            if available < len {
                break;
            }
            let payload = &self.buffer[at + FRAME_HEADER_LEN..at + FRAME_HEADER_LEN + len];
            on_frame(&mut self.block, kind, flags, stream, payload, out)?;
            at += FRAME_HEADER_LEN + len;
        }
        self.buffer.drain(..at);
        Ok(())
    }

    /// `len` bytes of the direction that were not copied: followed only
    /// inside a `DATA` payload.
    pub fn skip(&mut self, len: u64, out: &mut Vec<Frame>) -> Result<(), OutOfStep> {
        match &mut self.data {
            Some(data) if data.left >= len => {
                data.left -= len;
                if data.left == 0 {
                    self.end_data(out);
                }
                Ok(())
            }
            _ if len == 0 => Ok(()),
            _ => Err(OutOfStep),
        }
    }

    fn end_data(&mut self, out: &mut Vec<Frame>) {
        if let Some(data) = self.data.take() {
            out.push(Frame::Data { stream: data.stream, len: data.len, end_stream: data.end_stream });
        }
    }
}

/// A complete frame other than `DATA`.
fn on_frame(
    pending: &mut Option<PendingBlock>,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
    out: &mut Vec<Frame>,
) -> Result<(), OutOfStep> {
    let frame_bytes = (FRAME_HEADER_LEN + payload.len()) as u64;
    // Nothing may come between a header block's frames (RFC 9113, 6.10).
    if pending.is_some() != (kind == CONTINUATION) {
        return Err(OutOfStep);
    }
    let block = match kind {
        HEADERS => {
            let skip = if flags & PRIORITY != 0 { 5 } else { 0 };
            let fragment = unpadded(payload, flags).and_then(|p| p.get(skip..)).ok_or(OutOfStep)?;
            PendingBlock { stream, end_stream: flags & END_STREAM != 0, push: false, block: fragment.to_vec(), frame_bytes }
        }
        PUSH_PROMISE => {
            let fragment = unpadded(payload, flags).and_then(|p| p.get(4..)).ok_or(OutOfStep)?;
            PendingBlock { stream, end_stream: false, push: true, block: fragment.to_vec(), frame_bytes }
        }
        CONTINUATION => {
            let mut block = pending.take().ok_or(OutOfStep)?;
            if block.stream != stream {
                return Err(OutOfStep);
            }
            block.block.extend_from_slice(payload);
            block.frame_bytes += frame_bytes;
            block
        }
        RST_STREAM => {
            out.push(Frame::Reset { stream });
            return Ok(());
        }
        // SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY and unknown types
        // say nothing of a request.
        _ => return Ok(()),
    };
    if flags & END_HEADERS != 0 {
        let PendingBlock { stream, end_stream, push, block, frame_bytes } = block;
        out.push(Frame::Headers { stream, end_stream, push, block, frame_bytes });
    } else {
        *pending = Some(block);
    }
    Ok(())
}

/// A payload without its padding (`PADDED`: a length byte first, that
/// many bytes at the end).
fn unpadded(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let (&pad, rest) = payload.split_first()?;
    rest.get(..rest.len().checked_sub(usize::from(pad))?)
}
