//! OTLP/JSON documents: `resourceSpans[].scopeSpans[].spans[]`, walked
//! with serde while they are read, so that a document costs the memory of
//! one of its spans, not of its size, and each span is passed on as soon
//! as it has been read.
use std::{
    fmt,
    io::{self, BufRead, Cursor, Read},
    ops::ControlFlow,
};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::{ExternalSpan, Found, InputError, Limits, Location, Unusable, malformed, otlp_span, read_lines};

type Sink<'s> = dyn FnMut(Result<ExternalSpan, Unusable>) -> ControlFlow<()> + 's;

/// An OTLP document on one line of JSON lines: its spans are at that line.
pub(super) fn one_line(document: &Value, found: &mut Sink) -> ControlFlow<()> {
    let mut walk = Walk::new(found);
    match (Object { walk: &mut walk, list: Level::Resources }).deserialize(document) {
        Ok(()) => ControlFlow::Continue(()),
        Err(_) if walk.stopped => ControlFlow::Break(()),
        Err(e) => {
            let why = walk.problem.take().unwrap_or_else(|| malformed(e.to_string()));
            (walk.found)(Err(why))
        }
    }
}

/// One document over many lines, `number` the first; spans are located by
/// their position in it. If it turns out to be no document before a span
/// was found (a first line of JSON lines that is not JSON), the input is
/// read again as JSON lines, as long as what was read of it is still kept;
/// a whole JSON value without `resourceSpans` (a first span line too long
/// to be kept) is one malformed span, and the lines after it are read on.
///
/// serde reads `input` a byte at a time, with no read-ahead of its own, so
/// that where it stops is where the lines go on.
pub(super) fn document(input: impl BufRead, number: usize, limits: Limits, found: &mut Found) -> Result<(), InputError> {
    let mut source = Tee {
        inner: input,
        pulled: 0,
        newlines: 0,
        limit: limits.document,
        kept: Some(Vec::new()),
        keep: 2 * limits.line,
    };
    let mut position = 0;
    let mut emit = |span| {
        position += 1;
        found(Location::Span(position), span)
    };
    let mut walk = Walk::new(&mut emit);
    let result = {
        let mut de = serde_json::Deserializer::from_reader(&mut source);
        let value = (Object { walk: &mut walk, list: Level::Resources }).deserialize(&mut de);
        // After a document, only white space; after another value, lines.
        if value.is_ok() && walk.resource_spans { de.end() } else { value }
    };
    let Walk { spans, resource_spans, stopped, problem, .. } = walk;
    let at = |e: &serde_json::Error| Location::Line(number + e.line().saturating_sub(1));
    match result {
        _ if stopped => Ok(()),
        Ok(()) if resource_spans => Ok(()),
        Ok(()) => {
            let why = match source.newlines {
                0 => malformed(format!("longer than {}, the longest line read", super::size(limits.line as u64))),
                n => malformed(format!("a JSON value over {} lines without `resourceSpans`", n + 1)),
            };
            if found(Location::Line(number), Err(why)).is_break() {
                return Ok(());
            }
            // The rest of its last line (white space) counts as that line.
            read_lines(source.inner, number + source.newlines, limits, found)
        }
        Err(_) if source.pulled > limits.document => Err(InputError::DocumentTooLarge { limit: limits.document }),
        Err(e) if e.is_io() => Err(InputError::Read(e.into())),
        Err(e) if spans == 0 && problem.is_none() && (e.is_syntax() || e.is_eof()) && source.kept.is_some() => {
            let kept = source.kept.take().unwrap_or_default();
            read_lines(Cursor::new(kept).chain(source.inner), number, limits, found)
        }
        Err(e) => {
            let why = problem.unwrap_or_else(|| malformed(format!("not OTLP/JSON: {}", without_position(&e))));
            let _ = found(at(&e), Err(why));
            Ok(())
        }
    }
}

/// serde_json's message without the position it appends (the location
/// says where, counted from the start of the input).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((message, _)) if e.line() > 0 => message.to_owned(),
        _ => text,
    }
}

/// Reads `inner` up to one byte past `limit` (then ends, so that serde
/// stops), counting bytes and line ends, and keeping the first `keep`
/// bytes to read again.
struct Tee<R> {
    inner: R,
    pulled: u64,
    newlines: usize,
    limit: u64,
    kept: Option<Vec<u8>>,
    keep: usize,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = (self.limit + 1).saturating_sub(self.pulled);
        let wanted = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..wanted])?;
        self.pulled += n as u64;
        self.newlines += buf[..n].iter().filter(|&&b| b == b'\n').count();
        if let Some(kept) = &mut self.kept {
            if kept.len() + n <= self.keep {
                kept.extend_from_slice(&buf[..n]);
            } else {
                self.kept = None;
            }
        }
        Ok(n)
    }
}

/// What walking a document found, besides the spans passed on.
struct Walk<'w, 's> {
    found: &'w mut Sink<'s>,
    spans: usize,
    resource_spans: bool,
    /// `found` said to stop.
    stopped: bool,
    /// The structure is wrong (a list that is not one): said better than
    /// serde's message would.
    problem: Option<Unusable>,
}

impl<'w, 's> Walk<'w, 's> {
    fn new(found: &'w mut Sink<'s>) -> Self {
        Walk { found, spans: 0, resource_spans: false, stopped: false, problem: None }
    }
}

/// The three nested lists of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Resources,
    Scopes,
    Spans,
}

impl Level {
    fn key(self) -> &'static str {
        match self {
            Level::Resources => "resourceSpans",
            Level::Scopes => "scopeSpans",
            Level::Spans => "spans",
        }
    }

    /// What the entries of this level's list hold the list of; spans hold none.
    fn inner(self) -> Option<Level> {
        match self {
            Level::Resources => Some(Level::Scopes),
            Level::Scopes => Some(Level::Spans),
            Level::Spans => None,
        }
    }
}

/// An object whose member `list` is walked and whose other members are
/// skipped without being kept.
struct Object<'a, 'w, 's> {
    walk: &'a mut Walk<'w, 's>,
    list: Level,
}

impl<'de> DeserializeSeed<'de> for Object<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Object<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with `{}`", self.list.key())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.list.key() {
                self.walk.resource_spans |= self.list == Level::Resources;
                map.next_value_seed(List { walk: &mut *self.walk, level: self.list })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The list of a level (absent or null: empty).
struct List<'a, 'w, 's> {
    walk: &'a mut Walk<'w, 's>,
    level: Level,
}

impl List<'_, '_, '_> {
    fn not_a_list<E: de::Error>(self) -> Result<(), E> {
        let why = malformed(format!("`{}` is not a list", self.level.key()));
        let error = E::custom(&why);
        self.walk.problem = Some(why);
        Err(error)
    }
}

impl<'de> DeserializeSeed<'de> for List<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for List<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list in `{}`", self.level.key())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.walk;
        match self.level.inner() {
            Some(inner) => while seq.next_element_seed(Object { walk: &mut *walk, list: inner })?.is_some() {},
            None => {
                while let Some(span) = seq.next_element::<Value>()? {
                    walk.spans += 1;
                    if (walk.found)(otlp_span(&span)).is_break() {
                        walk.stopped = true;
                        return Err(de::Error::custom("stopped"));
                    }
                }
            }
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_a_list()
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_a_list()
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_a_list()
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_a_list()
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_a_list()
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_a_list()
    }
}
