//! Go source as tokens: a lexer of the generated files (identifiers, punctuation, strings with
//! their escapes, comments kept) and a cursor over its tokens.

use crate::run_of;

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    /// A string literal (interpreted or raw), decoded.
    Str(String),
    Num(String),
    Punct(char),
    /// One line of a comment, without `//` or `/* */`.
    Comment(String),
    Newline,
}

pub(super) fn lex(src: &str) -> Vec<Tok> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(c) = at(i) {
        match c {
            '\n' => {
                out.push(Tok::Newline);
                i += 1;
            }
            c if c.is_whitespace() => i += 1,
            '/' if at(i + 1) == Some('/') => {
                let start = i + 2;
                while at(i).is_some_and(|c| c != '\n') {
                    i += 1;
                }
                out.push(Tok::Comment(chars[start.min(i)..i].iter().collect::<String>().trim().to_owned()));
            }
            '/' if at(i + 1) == Some('*') => {
                let start = i + 2;
                i += 2;
                while at(i).is_some() && !(at(i) == Some('*') && at(i + 1) == Some('/')) {
                    i += 1;
                }
                let text: String = chars[start.min(i)..i].iter().collect();
                i = (i + 2).min(chars.len());
                for line in text.lines() {
                    out.push(Tok::Comment(line.trim().trim_start_matches('*').trim().to_owned()));
                }
                // A comment spanning lines ends the line it started on, as Go's semicolon rule has it.
                if text.contains('\n') {
                    out.push(Tok::Newline);
                }
            }
            '`' => {
                let start = i + 1;
                i += 1;
                while at(i).is_some_and(|c| c != '`') {
                    i += 1;
                }
                out.push(Tok::Str(chars[start.min(i)..i].iter().collect()));
                i += 1;
            }
            '"' | '\'' => {
                let (text, next) = go_unquote(&chars, i + 1, c);
                out.push(Tok::Str(text));
                i = next;
            }
            c if c.is_alphabetic() || c == '_' => {
                let (word, end) = run_of(&chars, i, |c| c.is_alphanumeric() || c == '_');
                out.push(Tok::Ident(word));
                i = end;
            }
            c if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) => {
                let (number, end) = run_of(&chars, i, |c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
                out.push(Tok::Num(number));
                i = end;
            }
            other => {
                out.push(Tok::Punct(other));
                i += 1;
            }
        }
    }
    out
}

/// An interpreted string (or rune) literal from `start` (after the quote): its text and the
/// index after the closing quote. An unterminated literal ends at the line's end.
pub(super) fn go_unquote(chars: &[char], start: usize, quote: char) -> (String, usize) {
    let mut out = String::new();
    let mut i = start;
    while let Some(&c) = chars.get(i) {
        match c {
            c if c == quote => return (out, i + 1),
            '\n' => return (out, i),
            '\\' => {
                let Some(&e) = chars.get(i + 1) else { return (out, i + 1) };
                let hex = |from: usize, n: usize| {
                    let s: String = chars.iter().skip(from).take(n).collect();
                    u32::from_str_radix(&s, 16).ok().and_then(char::from_u32)
                };
                let (decoded, used) = match e {
                    'n' => (Some('\n'), 2),
                    't' => (Some('\t'), 2),
                    'r' => (Some('\r'), 2),
                    'a' => (Some('\u{7}'), 2),
                    'b' => (Some('\u{8}'), 2),
                    'f' => (Some('\u{c}'), 2),
                    'v' => (Some('\u{b}'), 2),
                    'x' => (hex(i + 2, 2), 4),
                    'u' => (hex(i + 2, 4), 6),
                    'U' => (hex(i + 2, 8), 10),
                    '0'..='7' => {
                        let s: String = chars.iter().skip(i + 1).take(3).collect();
                        (u32::from_str_radix(&s, 8).ok().and_then(char::from_u32), 4)
                    }
                    other => (Some(other), 2),
                };
                out.extend(decoded);
                i += used;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (out, i)
}

/// A position in a token list, with the few look-aheads the parser needs.
pub(super) struct Cursor<'t> {
    pub(super) toks: &'t [Tok],
    pub(super) pos: usize,
    /// Braces opened and not closed, as [`Cursor::next_top_level_ident`] has passed them.
    depth: usize,
}

impl<'t> Cursor<'t> {
    pub(super) fn new(toks: &'t [Tok]) -> Self {
        Cursor { toks, pos: 0, depth: 0 }
    }

    /// Past the next identifier at the top level of a file (outside every `{…}`): where a
    /// declaration starts (`type`, `const`, `func`, …).
    pub(super) fn next_top_level_ident(&mut self) -> Option<&'t str> {
        while let Some(t) = self.bump() {
            match t {
                Tok::Punct('{') => self.depth += 1,
                Tok::Punct('}') => self.depth = self.depth.saturating_sub(1),
                Tok::Ident(k) if self.depth == 0 => return Some(k),
                _ => {}
            }
        }
        None
    }

    /// One spec after a declaration's keyword, or each of a parenthesised group of them
    /// (`const ( A X = "a"; B X = "b" )`).
    pub(super) fn specs(&mut self, mut spec: impl FnMut(&mut Self) -> Result<(), String>) -> Result<(), String> {
        if !self.eat_punct('(') {
            return spec(self);
        }
        loop {
            self.skip_lines();
            if self.eat_punct(')') || self.peek().is_none() {
                return Ok(());
            }
            let before = self.pos;
            spec(self)?;
            // A spec that reads nothing: past the token it stopped at, so that the loop moves on.
            if self.pos == before {
                self.bump();
            }
        }
    }

    pub(super) fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.pos)
    }

    pub(super) fn peek_at(&self, n: usize) -> Option<&'t Tok> {
        self.toks.get(self.pos + n)
    }

    pub(super) fn bump(&mut self) -> Option<&'t Tok> {
        let t = self.toks.get(self.pos);
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    pub(super) fn is_punct(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    pub(super) fn eat_punct(&mut self, c: char) -> bool {
        let yes = self.is_punct(c);
        if yes {
            self.pos += 1;
        }
        yes
    }

    pub(super) fn ident(&self) -> Option<&'t str> {
        match self.peek() {
            Some(Tok::Ident(s)) => Some(s),
            _ => None,
        }
    }

    pub(super) fn skip_lines(&mut self) {
        while matches!(self.peek(), Some(Tok::Newline | Tok::Comment(_)) | Some(Tok::Punct(';'))) {
            self.pos += 1;
        }
    }

    /// Past the bracket that closes the one just consumed (`open` already eaten).
    pub(super) fn skip_balanced(&mut self, open: char, close: char) {
        let mut depth = 1usize;
        while let Some(t) = self.bump() {
            match t {
                Tok::Punct(c) if *c == open => depth += 1,
                Tok::Punct(c) if *c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    /// To the end of the line, past brackets opened on it.
    pub(super) fn skip_line(&mut self) {
        while let Some(t) = self.peek() {
            match t {
                Tok::Newline => return,
                Tok::Punct('}') | Tok::Punct(')') => return,
                Tok::Punct(c @ ('{' | '(' | '[')) => {
                    let close = match c {
                        '{' => '}',
                        '(' => ')',
                        _ => ']',
                    };
                    self.pos += 1;
                    self.skip_balanced(*c, close);
                }
                _ => self.pos += 1,
            }
        }
    }
}
