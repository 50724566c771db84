//! The import scan: `crate::`, `super::` and `self::` paths of a Rust file,
//! with comments, strings and character literals blanked out first.
//!
//! Hand-written rather than parsed: `syn` would be a big build dependency of
//! xtask for what is a line scan.

/// A module path inside a crate: `[]` is the crate root, `["a", "b"]` is `a::b`.
pub type ModPath = Vec<String>;

/// `source` with comments (doc comments too), string and character literals
/// replaced by spaces; newlines are kept, so line numbers still match.
fn blank_comments_and_literals(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut out = String::with_capacity(source.len());
    let blank_to = |out: &mut String, from: usize, to: usize| {
        for &c in &chars[from..to.min(chars.len())] {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_hashes(&chars, i) {
            // r"...", r#"..."#, br#"..."#: no escapes, ends at a quote and as many hashes.
            i += hashes + 2;
            while i < chars.len() && !(chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#')) {
                i += 1;
            }
            i += hashes + 1;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' && at(i + 1) == '\\' {
            // An escaped character literal: '\n', '\'', '\u{1F600}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && at(i + 2) == '\'' {
            i += 3; // 'x'; anything else after a quote is a lifetime or a label.
        } else if ident_char(c) {
            // A whole identifier, so the `r` of `bar"` cannot start a raw string.
            while i < chars.len() && ident_char(chars[i]) && raw_string_hashes(&chars, i).is_none() {
                i += 1;
            }
            out.extend(&chars[start..i.max(start + 1)]);
            i = i.max(start + 1);
            continue;
        } else {
            out.push(c);
            i += 1;
            continue;
        }
        blank_to(&mut out, start, i);
    }
    out
}

/// If a raw string literal starts at `i` (its `r`), how many `#` it has.
fn raw_string_hashes(chars: &[char], i: usize) -> Option<usize> {
    if chars.get(i) != Some(&'r') {
        return None;
    }
    let is_ident = |j: usize| chars.get(j).is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let prefixed = i >= 1 && matches!(chars[i - 1], 'b' | 'c') && !(i >= 2 && is_ident(i - 2));
    if i >= 1 && is_ident(i - 1) && !prefixed {
        return None;
    }
    let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
    (chars.get(i + 1 + hashes) == Some(&'"')).then_some(hashes)
}

struct Token<'a> {
    text: &'a str,
    line: usize,
}

/// Identifiers (and numbers), `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = code.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let mut end = start + c.len_utf8();
        if c == '\n' {
            line += 1;
            continue;
        } else if c.is_whitespace() {
            continue;
        } else if c.is_alphanumeric() || c == '_' {
            while let Some(&(i, c)) = chars.peek().filter(|(_, c)| c.is_alphanumeric() || *c == '_') {
                end = i + c.len_utf8();
                chars.next();
            }
        } else if c == ':' && chars.peek().is_some_and(|(_, c)| *c == ':') {
            chars.next();
            end += 1;
        }
        tokens.push(Token { text: &code[start..end], line });
    }
    tokens
}

fn is_ident(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Every `crate::`, `super::` and `self::` path in `source`, a file of
/// module `module`, made absolute (a `use` group gives one path per
/// leaf), with the line it is on. Paths may go on past the module into items.
pub fn crate_paths(source: &str, module: &[String]) -> Vec<(ModPath, usize)> {
    let code = blank_comments_and_literals(source);
    let tokens = tokens(&code);
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text);
    let mut paths = Vec::new();
    // Inline modules (`mod tests { ... }`) we are in, with the brace depth inside them.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        match text(i) {
            "mod" if is_ident(text(i + 1)) && text(i + 2) == "{" => {
                depth += 1;
                inline.push((text(i + 1).to_owned(), depth));
                i += 3;
            }
            "{" => {
                depth += 1;
                i += 1;
            }
            "}" => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            "crate" | "super" | "self" if text(i + 1) == "::" && (i == 0 || text(i - 1) != "::") => {
                let mut here = module.to_vec();
                here.extend(inline.iter().map(|(name, _)| name.clone()));
                i = use_tree(&tokens, i, here, &mut paths);
            }
            _ => i += 1,
        }
    }
    paths
}

/// Reads the path or `use` tree starting at token `i`, relative to module
/// `path`, into `out`; returns the index of the token after it.
fn use_tree(tokens: &[Token<'_>], mut i: usize, mut path: ModPath, out: &mut Vec<(ModPath, usize)>) -> usize {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text);
    let line = tokens.get(i).map_or(0, |t| t.line);
    loop {
        match text(i) {
            "{" => {
                i += 1;
                while i < tokens.len() && text(i) != "}" {
                    let after = if text(i) == "," { i } else { use_tree(tokens, i, path.clone(), out) };
                    // Past a `,` or past something unexpected, so the loop always moves on.
                    i = if after == i { i + 1 } else { after };
                }
                return i + 1;
            }
            "*" => i += 1,
            segment if is_ident(segment) => {
                match segment {
                    // Valid only at the start of a path (or of a tree in a group).
                    "crate" => path.clear(),
                    "super" => {
                        path.pop();
                    }
                    "self" => {}
                    _ => path.push(segment.to_owned()),
                }
                i += 1;
                if text(i) == "::" {
                    i += 1;
                    continue;
                }
                if text(i) == "as" {
                    i += 2;
                }
            }
            // `<` of a turbofish, or anything unexpected: the path ends here.
            _ => {}
        }
        out.push((path, line));
        return i;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(source: &str, module: &[&str]) -> Vec<(String, usize)> {
        let module: ModPath = module.iter().map(|m| m.to_string()).collect();
        crate_paths(source, &module).into_iter().map(|(path, line)| (path.join("::"), line)).collect()
    }

    #[test]
    fn grouped_use_over_several_lines_gives_one_path_per_leaf() {
        let source = "\
use crate::{
    a::b::{C, D as E},
    // old::Gone,
    f,
    g::{self, h::*},
};
use super::{x::Y, z};
";
        let expected = [("a::b::C", 2), ("a::b::D", 2), ("f", 4), ("g", 5), ("g::h", 5), ("m::x::Y", 7), ("m::z", 7)];
        assert_eq!(paths(source, &["m", "n"]), expected.map(|(p, l)| (p.to_owned(), l)));
    }

    #[test]
    fn inline_paths_and_inline_modules() {
        let source = "\
fn f() { crate::a::B::<u8>::new(); self::c::d(); }
mod tests {
    use super::super::e::F;
}
use super::g;
";
        let expected = [("a::B", 1), ("m::n::c::d", 1), ("m::e::F", 3), ("m::g", 5)];
        assert_eq!(paths(source, &["m", "n"]), expected.map(|(p, l)| (p.to_owned(), l)));
    }

    #[test]
    fn comments_and_literals_are_not_imports() {
        let source = r###"
// use crate::a::A;
/// See [`crate::b::B`].
//! crate::c::C
/* use crate::d::D; /* nested crate::e */ crate::f */
let s = "crate::g::G \" crate::h";
let r = r#"crate::i::I " crate::j"#;
let c = ('"', '\'', b'x', '\u{22}');
fn k<'a>(x: &'a str) -> &'a str { crate::k::K }
"###;
        assert_eq!(paths(source, &[]), [("k::K".to_owned(), 9)]);
    }
}
