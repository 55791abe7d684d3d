//! The `filter` query parameter, with a deliberately small, strict grammar
//! (RFC 7644 §3.4.2.2 narrowed to what identity providers send before they
//! create or link a resource):
//!
//! ```text
//! filter  = attr SP "eq" SP string [ SP "and" SP "members[value eq " string "]" ]
//! attr    = userName | externalId | id            (Users)
//!         | displayName | externalId | id         (Groups; the members clause too, as Entra sends it)
//! string  = a JSON string literal (escapes as JSON's)
//! ```
//!
//! Anything else — another operator, `or`, `not`, parentheses, a bare word, a
//! second comparison — is refused with `invalidFilter` rather than guessed at,
//! so a crafted filter can never widen a query. The value is decoded as JSON
//! decodes it and only ever reaches the database as a bound parameter.

use crate::ScimError;

/// Longer filters are refused outright (no IdP sends one).
pub const MAX_FILTER_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Users,
    Groups,
}

/// The attribute a filter compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// Case-insensitive (RFC 7643 §4.1: `caseExact` false).
    UserName,
    /// Case-sensitive.
    ExternalId,
    Id,
    /// Case-insensitive.
    DisplayName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub attr: Attr,
    pub value: String,
    /// Groups only: `and members[value eq "<user id>"]` — Entra's way of
    /// asking whether a user is in a group.
    pub member: Option<String>,
}

pub fn parse(input: &str, resource: Resource) -> Result<Filter, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(ScimError::invalid_filter(format!("the filter is longer than {MAX_FILTER_LEN} characters")));
    }
    if input.chars().any(char::is_control) {
        return Err(ScimError::invalid_filter("the filter holds a control character"));
    }
    let mut p = Parser { s: input, pos: 0 };
    p.ws();
    let name = p.word();
    let attr = attr(name, resource)?;
    p.ws1()?;
    p.keyword("eq")?;
    p.ws1()?;
    let value = p.string()?;
    p.ws();
    let mut member = None;
    if !p.done() {
        if resource != Resource::Groups {
            return Err(unsupported(input));
        }
        p.keyword("and")?;
        p.ws1()?;
        let name = p.word();
        if !name.eq_ignore_ascii_case("members[value") {
            return Err(unsupported(input));
        }
        p.ws1()?;
        p.keyword("eq")?;
        p.ws1()?;
        member = Some(p.string()?);
        p.ws();
        if !p.eat(']') {
            return Err(unsupported(input));
        }
        p.ws();
        if !p.done() {
            return Err(unsupported(input));
        }
    }
    Ok(Filter { attr, value, member })
}

fn unsupported(input: &str) -> ScimError {
    ScimError::invalid_filter(format!(
        "unsupported filter {input:?}: only `<attribute> eq \"<value>\"` is supported (userName, externalId or id for \
         Users; displayName, externalId or id for Groups, optionally `and members[value eq \"<id>\"]`)"
    ))
}

fn attr(name: &str, resource: Resource) -> Result<Attr, ScimError> {
    // A fully qualified name (urn:...:core:2.0:User:userName) names the same attribute.
    let short = match resource {
        Resource::Users => strip_prefix_ci(name, crate::USER_SCHEMA),
        Resource::Groups => strip_prefix_ci(name, crate::GROUP_SCHEMA),
    }
    .and_then(|rest| rest.strip_prefix(':'))
    .unwrap_or(name);
    let lower = short.to_ascii_lowercase();
    match (lower.as_str(), resource) {
        ("username", Resource::Users) => Ok(Attr::UserName),
        ("displayname", Resource::Groups) => Ok(Attr::DisplayName),
        ("externalid", _) => Ok(Attr::ExternalId),
        ("id", _) => Ok(Attr::Id),
        _ => Err(ScimError::invalid_filter(format!(
            "filtering on {name:?} is not supported (supported: {})",
            match resource {
                Resource::Users => "userName, externalId, id",
                Resource::Groups => "displayName, externalId, id",
            }
        ))),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s.is_char_boundary(prefix.len()) && s[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &s[prefix.len()..])
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }
    fn done(&self) -> bool {
        self.pos == self.s.len()
    }
    fn ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(' ').len();
    }
    fn ws1(&mut self) -> Result<(), ScimError> {
        if !self.rest().starts_with(' ') {
            return Err(unsupported(self.s));
        }
        self.ws();
        Ok(())
    }
    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    /// Letters, digits and the few signs attribute paths use; stops at a space.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-' | '[' | '$')))
            .unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }
    fn keyword(&mut self, kw: &str) -> Result<(), ScimError> {
        let w = self.word();
        if w.eq_ignore_ascii_case(kw) {
            Ok(())
        } else if ["ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"].iter().any(|op| w.eq_ignore_ascii_case(op)) {
            Err(ScimError::invalid_filter(format!("the operator {w:?} is not supported: only eq")))
        } else {
            Err(unsupported(self.s))
        }
    }
    /// A JSON string literal, decoded.
    fn string(&mut self) -> Result<String, ScimError> {
        let rest = self.rest();
        if !rest.starts_with('"') {
            return Err(ScimError::invalid_filter(format!(
                "the value in filter {:?} must be a double-quoted string",
                self.s
            )));
        }
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let end = end.ok_or_else(|| ScimError::invalid_filter("the filter's string value is not closed"))?;
        let literal = &rest[..=end];
        let value: String = serde_json::from_str(literal)
            .map_err(|e| ScimError::invalid_filter(format!("the filter's string value is not valid: {e}")))?;
        // `"\u0000"` decodes to a NUL, which no stored value holds (and PostgreSQL cannot compare).
        if value.chars().any(char::is_control) {
            return Err(ScimError::invalid_filter("the filter's value holds a control character"));
        }
        self.pos += end + 1;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_raw_or_escaped() {
        for f in ["id eq \"a\u{0}b\"", r#"userName eq "a\u0000b""#, r#"externalId eq "\u0007""#] {
            let e = users(f).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(crate::ScimType::InvalidFilter)), "{f}");
        }
        assert!(users(r#"userName eq "ada@example.com""#).is_ok());
    }

    fn users(s: &str) -> Result<Filter, ScimError> {
        parse(s, Resource::Users)
    }

    #[test]
    fn the_filters_idps_send() {
        assert_eq!(
            users(r#"userName eq "ada@example.com""#).unwrap(),
            Filter { attr: Attr::UserName, value: "ada@example.com".into(), member: None }
        );
        assert_eq!(users(r#"externalId eq "00u1""#).unwrap().attr, Attr::ExternalId);
        assert_eq!(users(r#"ID EQ "x""#).unwrap().attr, Attr::Id);
        assert_eq!(users(r#"  username   eq   "x"  "#).unwrap().value, "x");
        assert_eq!(
            users(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#).unwrap().attr,
            Attr::UserName
        );
        let g = parse(r#"displayName eq "Sales""#, Resource::Groups).unwrap();
        assert_eq!((g.attr, g.value.as_str()), (Attr::DisplayName, "Sales"));
        // Entra's membership check.
        let m = parse(r#"id eq "g1" and members[value eq "u1"]"#, Resource::Groups).unwrap();
        assert_eq!((m.attr, m.value.as_str(), m.member.as_deref()), (Attr::Id, "g1", Some("u1")));
    }

    #[test]
    fn other_attributes_and_operators_are_invalid_filters() {
        for f in [
            r#"displayName eq "x""#,
            r#"emails.value eq "x""#,
            r#"userName co "x""#,
            r#"userName sw "x""#,
            "userName pr",
            r#"userName eq x"#,
            r#"userName eq 'x'"#,
            r#"userName eq "x"#,
            r#"userName eq"x""#,
            "",
            r#"(userName eq "x")"#,
            r#"not (userName eq "x")"#,
            r#"userName[eq "x"]"#,
        ] {
            let e = users(f).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(crate::ScimType::InvalidFilter)), "{f}");
        }
        assert!(parse(r#"userName eq "x""#, Resource::Groups).is_err());
    }

    #[test]
    fn injection_attempts_are_refused_or_literal() {
        // A second clause never widens the query: refused.
        for f in [
            r#"userName eq "a" or 1 eq 1"#,
            r#"userName eq "a" or userName pr"#,
            r#"userName eq "a" and externalId eq "b""#,
            r#"userName eq "a" ; DROP TABLE scim_users"#,
            r#"userName eq "a"" or ""=""#,
            r#"id eq "g" and members[value eq "u"] or id eq "h""#,
        ] {
            assert!(users(f).is_err(), "{f}");
        }
        assert!(parse(r#"id eq "g" and members[value eq "u"] or id eq "h""#, Resource::Groups).is_err());
        // Quotes and backslashes inside the string are the value itself.
        assert_eq!(users(r#"userName eq "a\" or \"1\"=\"1""#).unwrap().value, r#"a" or "1"="1"#);
        assert_eq!(users(r#"userName eq "a\\""#).unwrap().value, r"a\");
        assert_eq!(users(r#"userName eq "' OR '1'='1""#).unwrap().value, "' OR '1'='1");
        assert_eq!(users(r#"userName eq "%""#).unwrap().value, "%");
        // A backslash that escapes the closing quote leaves the string open.
        assert!(users(r#"userName eq "a\""#).is_err());
        // JSON's escapes only.
        assert!(users(r#"userName eq "a\q""#).is_err());
        assert!(users(&format!("userName eq \"{}\"", "a".repeat(MAX_FILTER_LEN))).is_err());
    }

    proptest::proptest! {
        /// Whatever the value (control characters aside: refused), written as a JSON string it comes back as itself.
        #[test]
        fn any_string_value_round_trips(value in ".*") {
            let f = format!("userName eq {}", serde_json::to_string(&value).unwrap());
            if f.len() <= MAX_FILTER_LEN && !value.chars().any(char::is_control) {
                proptest::prop_assert_eq!(users(&f).unwrap().value, value);
            }
        }

        /// No input panics, and whatever parses compares one attribute for equality.
        #[test]
        fn nothing_panics(s in ".{0,80}") {
            let _ = users(&s);
            let _ = parse(&s, Resource::Groups);
        }
    }
}
