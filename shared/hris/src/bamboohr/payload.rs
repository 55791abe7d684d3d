//! What an event-based webhook's body says. BambooHR posts it as JSON
//! (recommended) or form-encoded, with the same fields:
//!
//! ```json
//! {"type": "employee.updated", "timestamp": "2026-01-31T18:42:00+0000",
//!  "data": {"companyId": "12345", "employeeId": "67890", "changedFields": ["firstName"]}}
//! ```
//!
//! `type=employee.updated&data[companyId]=12345&data[employeeId]=67890&data[changedFields][0]=firstName`
//!
//! Ids only; the record is read from the API afterwards. BambooHR sends no
//! event id, so a delivery is the same delivery when its type, employee and
//! timestamp are (a retry resends the same body).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::signature::parse_iso;
use crate::{Delivery, DeliveryKind, ParseError};

pub const EMPLOYEE_CREATED: &str = "employee.created";
pub const EMPLOYEE_UPDATED: &str = "employee.updated";
pub const EMPLOYEE_DELETED: &str = "employee.deleted";

/// The fields we read, whatever the encoding.
#[derive(Default)]
struct Fields {
    kind: Option<String>,
    timestamp: Option<String>,
    company_id: Option<String>,
    employee_id: Option<String>,
}

pub(super) fn parse(body: &[u8]) -> Result<Delivery, ParseError> {
    let first = body.iter().copied().find(|b| !b.is_ascii_whitespace());
    let fields = match first {
        Some(b'{') => from_json(body)?,
        Some(_) => from_form(body)?,
        None => return Err(err("the body is empty")),
    };

    let type_name = fields.kind.ok_or_else(|| err("no type"))?;
    let kind = match type_name.as_str() {
        EMPLOYEE_CREATED => DeliveryKind::Joined,
        EMPLOYEE_UPDATED => DeliveryKind::Changed,
        EMPLOYEE_DELETED => DeliveryKind::Left,
        other => {
            return Err(err(&format!(
                "type {:?} is not an event-based webhook's (employee.created, employee.updated, employee.deleted)",
                shorten(other)
            )))
        }
    };
    let company_id = fields.company_id.ok_or_else(|| err("no data.companyId"))?;
    if company_id.is_empty() || company_id.len() > 64 || !company_id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(err("data.companyId must be 1 to 64 visible ASCII characters"));
    }
    let employee_id = fields.employee_id.ok_or_else(|| err("no data.employeeId"))?;
    // BambooHR's employee ids are numbers; anything else never reaches a URL.
    if employee_id.is_empty() || employee_id.len() > 20 || !employee_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(&format!("data.employeeId {:?} is not a BambooHR employee id", shorten(&employee_id))));
    }
    let occurred_at = match fields.timestamp.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => {
            Some(parse_iso(t).ok_or_else(|| err(&format!("timestamp {:?} is not an ISO 8601 time", shorten(t))))?)
        }
        None => None,
    };

    let key = format!("{type_name}:{employee_id}:{}", identity(occurred_at, body));
    Ok(Delivery { company_id, key, kind, type_name, employee_id: Some(employee_id), occurred_at })
}

/// What tells two deliveries of one type and employee apart: the event's time,
/// or (a form post without one) the body itself.
fn identity(occurred_at: Option<DateTime<Utc>>, body: &[u8]) -> String {
    match occurred_at {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Secs, true),
        None => format!("sha256:{}", &hex::encode(Sha256::digest(body))[..32]),
    }
}

fn from_json(body: &[u8]) -> Result<Fields, ParseError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| err(&format!("not JSON: {e}")))?;
    let Value::Object(root) = value else { return Err(err("not a JSON object")) };
    let data = match root.get("data") {
        Some(Value::Object(data)) => data,
        Some(_) => return Err(err("data is not an object")),
        None => return Err(err("no data")),
    };
    Ok(Fields {
        kind: text(root.get("type"), "type")?,
        timestamp: text(root.get("timestamp"), "timestamp")?,
        company_id: text(data.get("companyId"), "data.companyId")?,
        employee_id: text(data.get("employeeId"), "data.employeeId")?,
    })
}

/// A string, or a number written as one (ids come either way).
fn text(value: Option<&Value>, name: &str) -> Result<Option<String>, ParseError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => Err(err(&format!("{name} is neither a string nor a whole number"))),
    }
}

fn from_form(body: &[u8]) -> Result<Fields, ParseError> {
    if body.contains(&0) {
        return Err(err("not JSON and not form-encoded"));
    }
    let mut fields = Fields::default();
    // `&` separates pairs; a raw line break cannot be part of a form value
    // (it would be %0A), so it is taken as a separator too.
    for part in body.split(|b| matches!(b, b'&' | b'\n' | b'\r')) {
        for (k, v) in url::form_urlencoded::parse(part) {
            let slot = match k.as_ref() {
                "type" => &mut fields.kind,
                "timestamp" => &mut fields.timestamp,
                "data[companyId]" => &mut fields.company_id,
                "data[employeeId]" => &mut fields.employee_id,
                _ => continue,
            };
            if slot.is_some() {
                return Err(err(&format!("{} is given twice", shorten(&k))));
            }
            *slot = Some(v.trim().to_owned());
        }
    }
    if fields.kind.is_none() && fields.employee_id.is_none() {
        return Err(err("not JSON and not form-encoded"));
    }
    Ok(fields)
}

fn err(what: &str) -> ParseError {
    ParseError(format!("not a BambooHR event-based webhook: {what}"))
}

/// At most 64 characters of what was sent, for messages.
fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    /// The example on BambooHR's "Event-Based Webhooks" page.
    const DOCS_EXAMPLE: &str = r#"{
  "type": "employee.updated",
  "timestamp": "2026-01-31T18:42:00+0000",
  "data": {
    "companyId": "12345",
    "employeeId": "67890",
    "changedFields": [
      "firstName"
    ]
  }
}"#;

    #[test]
    fn reads_the_documented_example() {
        let d = parse(DOCS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(d.kind, DeliveryKind::Changed);
        assert_eq!(d.type_name, "employee.updated");
        assert_eq!(d.company_id, "12345");
        assert_eq!(d.employee_id.as_deref(), Some("67890"));
        assert_eq!(d.occurred_at, Some(Utc.with_ymd_and_hms(2026, 1, 31, 18, 42, 0).unwrap()));
        assert_eq!(d.key, "employee.updated:67890:2026-01-31T18:42:00Z");
    }

    #[test]
    fn reads_the_documented_form_post() {
        let form =
            "type=employee.updated\ndata[companyId]=12345\ndata[employeeId]=67890\ndata[changedFields][0]=firstName";
        let d = parse(form.as_bytes()).unwrap();
        assert_eq!(
            (d.kind, d.company_id.as_str(), d.employee_id.as_deref()),
            (DeliveryKind::Changed, "12345", Some("67890"))
        );
        assert_eq!(d.occurred_at, None);
        let encoded = "type=employee.created&data%5BcompanyId%5D=12345&data%5BemployeeId%5D=7&timestamp=2026-01-31T18%3A42%3A00%2B0000";
        let d = parse(encoded.as_bytes()).unwrap();
        assert_eq!(d.kind, DeliveryKind::Joined);
        assert_eq!(d.key, "employee.created:7:2026-01-31T18:42:00Z");
        // Without a timestamp, the same body is the same delivery and another is not.
        assert_eq!(parse(form.as_bytes()).unwrap().key, parse(form.as_bytes()).unwrap().key);
        let other = form.replace("firstName", "department");
        assert_ne!(parse(form.as_bytes()).unwrap().key, parse(other.as_bytes()).unwrap().key);
    }

    #[test]
    fn the_three_types_and_numeric_ids() {
        let body = |t: &str| {
            format!(
                r#"{{"type":"{t}","timestamp":"2026-01-31T18:42:00Z","data":{{"companyId":12345,"employeeId":42}}}}"#
            )
        };
        assert_eq!(parse(body("employee.created").as_bytes()).unwrap().kind, DeliveryKind::Joined);
        assert_eq!(parse(body("employee.deleted").as_bytes()).unwrap().kind, DeliveryKind::Left);
        let d = parse(body("employee.updated").as_bytes()).unwrap();
        assert_eq!((d.company_id.as_str(), d.employee_id.as_deref()), ("12345", Some("42")));
        let created = parse(body("employee.created").as_bytes()).unwrap();
        assert_ne!(created.key, d.key, "created and updated of one person are two deliveries");
    }

    #[test]
    fn refuses_what_bamboohr_does_not_send() {
        for bad in [
            "",
            "   ",
            "[]",
            "{}",
            r#"{"type":"employee_with_fields.created","data":{"companyId":"1","employeeId":"2"}}"#,
            r#"{"type":"employee.updated","data":{"companyId":"1"}}"#,
            r#"{"type":"employee.updated","data":{"employeeId":"2"}}"#,
            r#"{"type":"employee.updated","data":{"companyId":"1","employeeId":"../2"}}"#,
            r#"{"type":"employee.updated","data":{"companyId":"1","employeeId":-2}}"#,
            r#"{"type":"employee.updated","data":{"companyId":"1","employeeId":"2"},"timestamp":"noon"}"#,
            r#"{"type":"employee.updated","data":[]}"#,
            "type=employee.updated&type=employee.deleted&data[companyId]=1&data[employeeId]=2",
            "hello",
        ] {
            let e = parse(bad.as_bytes()).expect_err(bad);
            assert!(e.0.starts_with("not a BambooHR event-based webhook"), "{bad}: {e}");
        }
    }
}
