//! Reading a request, written once for every vendor: the mutation log's request identity
//! ([`Op`]), the query string ([`Params`]), a JSON object body ([`json_object`]), the
//! credentials of `Authorization` ([`bearer`], [`basic`]) and the e-mail shape check.
//!
//! What a vendor answers when a query string or a body cannot be read stays the vendor's own:
//! its error type implements `From<MalformedQuery>` and `From<BodyError>`, so `?` answers in
//! the vendor's format. Each vendor's auth rules stay in its module.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::token::Token;

/// Method and vendor-relative path of the request, for the mutation log.
pub(crate) struct Op {
    pub(crate) method: Method,
    pub(crate) path: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Op {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Op { method: parts.method.clone(), path: parts.uri.path().to_owned() })
    }
}

/// The query string could not be read as `key=value` pairs.
#[derive(Debug)]
pub(crate) struct MalformedQuery;

/// The query string as pairs, in order (a parameter may repeat: `ids=a&ids=b`). `E` is the
/// vendor's error type, which answers a malformed query string in the vendor's format.
pub(crate) struct Params<E> {
    pairs: Vec<(String, String)>,
    rejection: PhantomData<fn() -> E>,
}

impl<E> Params<E> {
    pub(crate) fn from_uri(uri: &Uri) -> Option<Self> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
        Some(Params { pairs, rejection: PhantomData })
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

impl<S: Send + Sync, E: From<MalformedQuery> + IntoResponse> FromRequestParts<S> for Params<E> {
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Params::from_uri(&parts.uri).ok_or_else(|| E::from(MalformedQuery))
    }
}

/// Why a body is not the JSON object a handler wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Not JSON at all.
    Malformed,
    /// JSON, but not an object.
    NotAnObject,
}

/// What an empty (or all-whitespace) body means: vendors differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Empty {
    /// `{}`: nothing to change (partial updates).
    IsObject,
    /// Not JSON, like any other unparsable body.
    IsMalformed,
}

/// The request body as a JSON object.
pub(crate) fn json_object(body: &Bytes, empty: Empty) -> Result<Map<String, Value>, BodyError> {
    if empty == Empty::IsObject && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(BodyError::NotAnObject),
        Err(_) => Err(BodyError::Malformed),
    }
}

/// The token of `Authorization: Bearer TOKEN`; `None` when absent, of another scheme, or empty.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<Token> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| Token::from(token))
}

/// The decoded `user:password` of `Authorization: Basic ...`; each vendor reads its own
/// credential out of it (Jira: e-mail and API token; CircleCI: the token as the user).
pub(crate) fn basic(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    String::from_utf8(decoded).ok()
}

/// A pragmatic check: one `@`, something before it, a dotted domain after it, no spaces.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn bearer_token_needs_the_scheme_and_a_value() {
        let exposed = |h: &HeaderMap| bearer(h).map(|t| t.expose().to_owned());
        assert_eq!(exposed(&auth("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(exposed(&auth("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&auth("Bearer   ")), None);
        assert_eq!(bearer(&auth("Basic YTpi")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn basic_is_decoded_and_needs_its_scheme() {
        assert_eq!(basic(&auth("Basic YTpi")).as_deref(), Some("a:b"));
        assert_eq!(basic(&auth("basic  YTpi ")).as_deref(), Some("a:b"));
        assert_eq!(basic(&auth("Bearer YTpi")), None);
        assert_eq!(basic(&auth("Basic !!!")), None);
    }

    #[test]
    fn bodies_are_objects_and_empty_means_what_the_vendor_says() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert_eq!(json_object(&b(" "), Empty::IsObject), Ok(Map::new()));
        assert_eq!(json_object(&b(""), Empty::IsMalformed), Err(BodyError::Malformed));
        assert_eq!(json_object(&b("{x"), Empty::IsObject), Err(BodyError::Malformed));
        assert_eq!(json_object(&b("[]"), Empty::IsObject), Err(BodyError::NotAnObject));
        assert_eq!(json_object(&b(r#"{"a":1}"#), Empty::IsMalformed).map(|m| m.len()), Ok(1));
    }

    #[test]
    fn query_pairs_keep_order_and_repeats() {
        let p = Params::<()>::from_uri(&"/x?a=1&b=2&a=3".parse().unwrap()).unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.all("a"), ["1", "3"]);
        assert_eq!(p.get("c"), None);
        assert_eq!(p.pairs().len(), 3);
    }

    #[test]
    fn email_shape() {
        assert!(valid_email("ada@example.com"));
        for bad in [
            "ada",
            "@example.com",
            "ada@example",
            "ada@.example.com",
            "ada@example.com.",
            "a@b@c.com",
            "ada lovelace@example.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
