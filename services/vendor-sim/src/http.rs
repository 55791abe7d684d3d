//! Request helpers every vendor module shares: the mutation log's request identity, the bearer
//! token, and the e-mail shape check. Each vendor's own auth rules stay in its module.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

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

/// The token of `Authorization: Bearer TOKEN`; `None` when absent, of another scheme, or empty.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
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
        assert_eq!(bearer(&auth("Bearer abc")).as_deref(), Some("abc"));
        assert_eq!(bearer(&auth("bearer  abc ")).as_deref(), Some("abc"));
        assert_eq!(bearer(&auth("Bearer   ")), None);
        assert_eq!(bearer(&auth("Basic YTpi")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
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
