//! Problems with the fields of a request, each named by its dotted path and
//! as a JSON pointer: what the event parser, the apps' parsers and the JSON
//! walker all report in. A leaf, so that none of them imports another for it.

use serde::{Deserialize, Serialize};

/// One problem with one field of a request, named by its dotted path
/// (`employee.email`, `apps.jira.groups[0]`) and as a JSON pointer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub pointer: String,
    pub detail: String,
}

impl FieldError {
    /// `field` is the dotted path; the empty path is the whole body.
    pub fn new(field: &str, detail: &str) -> Self {
        FieldError { field: field.to_string(), pointer: json_pointer(field), detail: detail.to_string() }
    }
}

#[derive(Default, Debug)]
pub(crate) struct FieldErrors(Vec<FieldError>);

impl FieldErrors {
    pub(crate) fn push(&mut self, field: &str, detail: &str) {
        self.0.push(FieldError::new(field, detail));
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    pub(crate) fn into_vec(self) -> Vec<FieldError> {
        self.0
    }
}

fn json_pointer(field: &str) -> String {
    if field.is_empty() {
        // The whole document, as a URI fragment (RFC 6901 §6).
        return "#".to_string();
    }
    let mut out = String::new();
    for part in field.split('.') {
        // `groups[0]` becomes `/groups/0`.
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']'))),
            None => (part, None),
        };
        out.push('/');
        out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        if let Some(i) = index {
            out.push('/');
            out.push_str(i);
        }
    }
    format!("#{out}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_follow_rfc6901() {
        assert_eq!(json_pointer("apps.jira.groups[0]"), "#/apps/jira/groups/0");
        assert_eq!(json_pointer("employee.email"), "#/employee/email");
        assert_eq!(json_pointer(""), "#");
    }
}
