//! List queries (RFC 7644 §3.4.2): 1-based `startIndex`, `count` bounded by
//! the server, and the ListResponse message.

use serde_json::{json, Value};

/// Paging as asked, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based; below 1 counts as 1 (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// At most the server's page size; a negative count is 0.
    pub count: u64,
}

impl Page {
    /// `start_index` and `count` as they came in the query (unparsable ones
    /// are refused with `invalidValue` by the caller), `max` the page bound.
    pub fn new(start_index: Option<i64>, count: Option<i64>, max: u64) -> Page {
        Page {
            start_index: start_index.unwrap_or(1).max(1) as u64,
            count: count.map_or(max, |c| (c.max(0) as u64).min(max)),
        }
    }

    /// The rows to skip.
    pub fn offset(&self) -> u64 {
        self.start_index - 1
    }
}

pub fn list_response(total: u64, page: Page, resources: Vec<Value>) -> Value {
    json!({
        "schemas": [crate::LIST_RESPONSE],
        "totalResults": total,
        "startIndex": page.start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_is_one_based_and_bounded() {
        assert_eq!(Page::new(None, None, 100), Page { start_index: 1, count: 100 });
        assert_eq!(Page::new(Some(0), Some(-5), 100), Page { start_index: 1, count: 0 });
        assert_eq!(Page::new(Some(11), Some(100_000), 100), Page { start_index: 11, count: 100 });
        assert_eq!(Page::new(Some(11), Some(10), 100).offset(), 10);
        let r = list_response(3, Page::new(Some(2), Some(1), 10), vec![json!({"id": "b"})]);
        assert_eq!(
            (r["totalResults"].as_u64(), r["startIndex"].as_u64(), r["itemsPerPage"].as_u64()),
            (Some(3), Some(2), Some(1))
        );
    }
}
