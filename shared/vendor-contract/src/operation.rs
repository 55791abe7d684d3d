//! What the definitions read from SDKs share (FalconPy's table, a Speakeasy Go SDK, Pipedrive's
//! Node SDK): an operation's method, path template and parameters, finding the one an exchange
//! is for, and the rules every one of them applies to its parameters, its body's presence and
//! its answers. Each definition keeps only how it reads its source and what it adds (its body
//! models, its form fields, which answers it knows).
//!
//! The parameter rules: no query parameter the operation does not declare; each value of its
//! declared type, range and enum ([`check_scalar`]); one the operation takes once is sent once,
//! an array repeated or joined as the definition says (and no more items than it allows); every
//! required one present; path parameters typed; required headers present.

use crate::schema::Strictness;
use crate::{check_scalar, literal_segments, match_template, Exchange, Part, SetupError, Verdict, Violation};
use serde_json::Value;
use std::collections::BTreeMap;

/// An operation: where it is, what parameters it takes, and what the definition it comes from
/// says beyond that (`V`: its body, its answers).
#[derive(Clone, Debug)]
pub(crate) struct Operation<V> {
    /// The definition's own name for it (an operation id, an SDK method's name).
    pub id: String,
    /// Upper case.
    pub method: String,
    pub template: String,
    pub params: Vec<Param>,
    pub vendor: V,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    Query,
    Path,
    Header,
    Body,
    FormData,
}

#[derive(Clone, Debug)]
pub(crate) struct Param {
    pub name: String,
    pub place: Place,
    /// What each value's text must fit ([`check_scalar`]): an array's items' schema where the
    /// definition checks item by item.
    pub schema: Value,
    pub required: bool,
    pub list: List,
    /// At most this many values (items of a joined list, repetitions of a repeated one).
    pub max_items: Option<usize>,
}

/// How a parameter carries several values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum List {
    Single,
    /// Sent once per value: `?ids=1&ids=2`.
    Repeated,
    /// One value, the items joined by this.
    Joined(char),
}

/// How a definition words, and counts, a parameter that is sent more than once but taken once:
/// the only way the SDK definitions' parameter checks differ.
pub(crate) struct Repeats {
    /// Ends "`x` is sent more than once but {operation} …".
    pub takes_once: &'static str,
    /// Every extra sending is a violation, or only the first.
    pub each: bool,
}

impl Param {
    pub fn new(name: impl Into<String>, place: Place, schema: Value, required: bool) -> Self {
        Param { name: name.into(), place, schema, required, list: List::Single, max_items: None }
    }
}

impl<V> Operation<V> {
    /// `id (METHOD /template)`, for messages.
    pub fn label(&self) -> String {
        format!("{} ({} {})", self.id, self.method, self.template)
    }

    pub fn params_in(&self, place: Place) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(move |p| p.place == place)
    }

    pub fn param(&self, place: Place, name: &str) -> Option<&Param> {
        self.params_in(place).find(|p| p.name == name)
    }

    pub fn param_mut(&mut self, place: Place, name: &str) -> Option<&mut Param> {
        self.params.iter_mut().find(|p| p.place == place && p.name == name)
    }

    /// The path, query and header parameters against the rules in the module's documentation.
    pub fn check_params(&self, ex: &Exchange, path_values: &[(String, String)], repeats: &Repeats) -> Vec<Violation> {
        let mut out = Vec::new();
        for (name, value) in path_values {
            if let Some(p) = self.param(Place::Path, name) {
                if let Err(e) = check_scalar(name, value, &p.schema) {
                    out.push(Violation::new(Part::PathParam, format!("{e} ({})", self.id)));
                }
            }
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (name, value) in &ex.query {
            let Some(p) = self.param(Place::Query, name) else {
                out.push(Violation::new(Part::Query, format!("`{name}` is not a query parameter of {}", self.label())));
                continue;
            };
            let count = seen.entry(name.as_str()).or_default();
            *count += 1;
            let again = if repeats.each { *count > 1 } else { *count == 2 };
            if again && p.list != List::Repeated {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{name}` is sent more than once but {} {}", self.id, repeats.takes_once),
                ));
            }
            let values: Vec<&str> = match p.list {
                List::Joined(sep) => value.split(sep).collect(),
                List::Single | List::Repeated => vec![value],
            };
            if let Some(max) = p.max_items.filter(|m| values.len() > *m) {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{name}` lists {} items, more than the {max} {} allows", values.len(), self.id),
                ));
            }
            for v in values {
                if let Err(e) = check_scalar(name, v, &p.schema) {
                    out.push(Violation::new(Part::Query, format!("{e} ({})", self.id)));
                }
            }
        }
        for p in self.params_in(Place::Query) {
            let sent = seen.get(p.name.as_str()).copied().unwrap_or(0);
            if p.required && sent == 0 {
                out.push(Violation::new(
                    Part::Query,
                    format!("the required query parameter `{}` of {} is missing", p.name, self.id),
                ));
            }
            if let Some(max) = p.max_items.filter(|m| p.list == List::Repeated && sent > *m) {
                out.push(Violation::new(
                    Part::Query,
                    format!("`{}` is sent {sent} times, more than the {max} {} allows", p.name, self.id),
                ));
            }
        }
        for p in self.params_in(Place::Header).filter(|p| p.required) {
            if ex.header(&p.name).is_none() {
                out.push(Violation::new(
                    Part::Query,
                    format!("the required header `{}` of {} is missing", p.name, self.id),
                ));
            }
        }
        out
    }

    /// The body's presence: `takes` is what the operation says of its body (with whether it is
    /// required), `None` where it takes none. `Ok` with that and the body to check against it;
    /// `Err` with the verdict where there is none to check (empty when nothing was sent and
    /// nothing was needed).
    pub fn sent_body<'s, 'e, S>(
        &self,
        ex: &'e Exchange,
        takes: Option<(&'s S, bool)>,
    ) -> Result<(&'s S, &'e Value), Vec<Violation>> {
        match (takes, ex.body.as_ref().filter(|b| !b.is_null())) {
            (Some((spec, _)), Some(body)) => Ok((spec, body)),
            (None, Some(_)) => {
                Err(vec![Violation::new(Part::RequestBody, format!("{} takes no body, one was sent", self.label()))])
            }
            (Some((_, true)), None) => {
                Err(vec![Violation::new(Part::RequestBody, format!("{} requires a body and none was sent", self.id))])
            }
            (_, None) => Err(vec![]),
        }
    }

    /// A 2xx status the definition does not list for this operation (`known`: what it lists).
    pub fn unanswered(&self, status: u16, known: String) -> Violation {
        Violation::new(Part::Status, format!("{} does not answer {status} ({known})", self.label()))
    }

    /// The answer's body against `model`, the model (and its name) the definition gives for its
    /// status, `None` where it says the status comes without a body: a 2xx body must be there and
    /// is checked closed, an error body is checked open; `errors` checks one.
    pub fn check_answer<M>(
        &self,
        ex: &Exchange,
        model: Option<(&M, String)>,
        errors: impl FnOnce(&M, &Value, Strictness) -> Vec<String>,
    ) -> Vec<Violation> {
        let success = (200..300).contains(&ex.status);
        match (model, ex.response.as_ref().filter(|b| !b.is_null())) {
            (None, Some(_)) if success => vec![Violation::new(
                Part::ResponseBody,
                format!("{} answers {} with no body, one was sent", self.id, ex.status),
            )],
            (Some((_, name)), None) if success => vec![Violation::new(
                Part::ResponseBody,
                format!("{} answers {} with {name}, no body was sent", self.id, ex.status),
            )],
            (Some((model, name)), Some(body)) => {
                let strictness = if success { Strictness::Closed } else { Strictness::Open };
                errors(model, body, strictness)
                    .into_iter()
                    .map(|e| Violation::new(Part::ResponseBody, format!("{} {} ({name}) {e}", self.id, ex.status)))
                    .collect()
            }
            _ => vec![],
        }
    }
}

/// A definition's operations, most literal templates first (so that `/users/find` is found
/// before `/users/{id}`).
#[derive(Clone, Debug)]
pub(crate) struct Operations<V> {
    ops: Vec<Operation<V>>,
}

impl<V> Operations<V> {
    /// Sorted stably: operations with templates as literal as each other keep their order.
    pub fn new(mut ops: Vec<Operation<V>>) -> Self {
        ops.sort_by_key(|o| std::cmp::Reverse(literal_segments(&o.template)));
        Operations { ops }
    }

    pub fn push(&mut self, op: Operation<V>) {
        self.ops.push(op);
        self.ops.sort_by_key(|o| std::cmp::Reverse(literal_segments(&o.template)));
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Operation<V>> {
        self.ops.iter()
    }

    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Operation<V>> {
        self.ops.iter_mut()
    }

    /// Whether there is `method` at `template`.
    pub fn has(&self, method: &str, template: &str) -> bool {
        self.ops.iter().any(|o| o.method.eq_ignore_ascii_case(method) && o.template == template)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().map(|o| o.id.as_str())
    }

    /// The operation a test names: its id or `METHOD /template`.
    pub fn named_mut(&mut self, name: &str) -> Result<&mut Operation<V>, SetupError> {
        self.ops
            .iter_mut()
            .find(|o| o.id == name || format!("{} {}", o.method, o.template) == name)
            .ok_or_else(|| SetupError::UnknownOperation(name.into()))
    }

    /// The exchange judged by the operation for its method and path: the parameters, then the
    /// definition's own checks of the body and of the answer.
    pub fn judge(
        &self,
        ex: &Exchange,
        repeats: &Repeats,
        body: impl FnOnce(&Operation<V>) -> Vec<Violation>,
        answer: impl FnOnce(&Operation<V>) -> Vec<Violation>,
    ) -> Verdict {
        let (op, values) =
            route(&self.ops, |o| o.template.as_str(), |o| o.method.eq_ignore_ascii_case(&ex.method), ex)?;
        let mut violations = op.check_params(ex, &values, repeats);
        violations.extend(body(op));
        violations.extend(answer(op));
        verdict(&op.id, violations)
    }
}

/// What an exchange is for, with its path parameters' values; or the violation saying why
/// nothing is.
pub(crate) type Routed<'a, T> = Result<(&'a T, Vec<(String, String)>), Vec<Violation>>;

/// Of `candidates` (most literal templates first), the first whose template matches the path
/// and that `serves` the method, with the path parameters' values; else the violation saying
/// whether the path or only the method is unknown.
pub(crate) fn route<'a, T>(
    candidates: &'a [T],
    template: impl Fn(&'a T) -> &'a str,
    serves: impl Fn(&'a T) -> bool,
    ex: &Exchange,
) -> Routed<'a, T> {
    let mut path_matched = false;
    for c in candidates {
        let Some(values) = match_template(template(c), &ex.path) else { continue };
        path_matched = true;
        if serves(c) {
            return Ok((c, values));
        }
    }
    let why = if path_matched {
        format!("no {} operation at {}", ex.method, ex.path)
    } else {
        format!("no path of the definition matches {}", ex.path)
    };
    Err(vec![Violation::new(Part::Operation, why)])
}

/// The operation's name, or every violation found.
pub(crate) fn verdict(id: &str, violations: Vec<Violation>) -> Verdict {
    if violations.is_empty() {
        Ok(id.to_owned())
    } else {
        Err(violations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ex;
    use serde_json::json;

    fn op(params: Vec<Param>) -> Operation<()> {
        Operation { id: "listThings".into(), method: "GET".into(), template: "/things".into(), params, vendor: () }
    }

    #[test]
    fn a_value_taken_once_and_sent_thrice_is_named_as_the_definition_counts_it() {
        let op = op(vec![Param::new("limit", Place::Query, json!({"type": "integer"}), false)]);
        let thrice = ex("GET", "/things", &[("limit", "1"), ("limit", "2"), ("limit", "3")]);
        let each = op.check_params(&thrice, &[], &Repeats { takes_once: "takes it once", each: true });
        assert_eq!(each.len(), 2, "{each:?}");
        assert!(each[0].message.contains("`limit` is sent more than once but listThings takes it once"));
        let once = op.check_params(&thrice, &[], &Repeats { takes_once: "takes one value", each: false });
        assert_eq!(once.len(), 1, "{once:?}");
        assert!(once[0].message.ends_with("listThings takes one value"));
    }

    #[test]
    fn lists_are_split_limited_and_repeated_as_declared() {
        let item = json!({"type": "integer"});
        let joined = Param {
            list: List::Joined('|'),
            max_items: Some(2),
            ..Param::new("ids", Place::Query, item.clone(), true)
        };
        let repeated =
            Param { list: List::Repeated, max_items: Some(2), ..Param::new("tag", Place::Query, item, false) };
        let op = op(vec![joined, repeated, Param::new("x-key", Place::Header, json!({}), true)]);
        let repeats = Repeats { takes_once: "takes it once", each: true };
        assert!(
            op.check_params(&ex("GET", "/things", &[("ids", "1|2"), ("tag", "1"), ("tag", "2")]), &[], &repeats).len()
                == 1
        );
        let e = op.check_params(
            &ex("GET", "/things", &[("ids", "1|x|3"), ("tag", "1"), ("tag", "2"), ("tag", "3")]),
            &[],
            &repeats,
        );
        let text: Vec<&str> = e.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(text[0].contains("`ids` lists 3 items, more than the 2 listThings allows"), "{text:#?}");
        assert!(text[1].contains("`ids` must be an integer, got `x`"), "{text:#?}");
        assert!(text[2].contains("`tag` is sent 3 times, more than the 2 listThings allows"), "{text:#?}");
        assert!(text[3].contains("the required header `x-key` of listThings is missing"), "{text:#?}");
        assert!(op.check_params(&ex("GET", "/things", &[]), &[], &repeats)[0]
            .message
            .contains("required query parameter `ids`"));
    }

    #[test]
    fn the_most_literal_template_is_found_first_and_misses_say_why() {
        let id = Param::new("id", Place::Path, json!({"type": "integer"}), true);
        let ops = Operations::new(vec![
            Operation { template: "/things/{id}".into(), ..op(vec![id]) },
            Operation { id: "mine".into(), template: "/things/mine".into(), ..op(vec![]) },
        ]);
        let repeats = Repeats { takes_once: "takes it once", each: true };
        let judge = |method: &str, path: &str| ops.judge(&ex(method, path, &[]), &repeats, |_| vec![], |_| vec![]);
        assert_eq!(judge("GET", "/things/mine"), Ok("mine".into()));
        assert_eq!(judge("GET", "/things/7"), Ok("listThings".into()));
        assert_eq!(judge("GET", "/things/x").unwrap_err()[0].part, Part::PathParam);
        assert!(judge("PUT", "/things/7").unwrap_err()[0].message.contains("no PUT operation"));
        assert!(judge("GET", "/other").unwrap_err()[0].message.contains("no path of the definition"));
    }
}
