//! The overview: runs counted by vendor and state, and the recent dead runs.

use super::*;

struct CountRow {
    vendor: VendorKind,
    cells: Vec<CountCell>,
    total: i64,
}

/// One count: its column, and whether the column opens a group (a rule left of it).
struct CountCell {
    column: &'static str,
    n: i64,
    opens: bool,
}

/// A header over the columns of one group.
struct GroupHead {
    label: &'static str,
    span: usize,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    groups: Vec<GroupHead>,
    rows: Vec<CountRow>,
    /// Every column summed over vendors (the header names them from here too).
    totals: Vec<CountCell>,
    total: i64,
    /// The recent dead runs.
    runs: Vec<RunRow>,
    dead_count: i64,
}

impl OverviewPage {
    /// The table of `counts`: a column for every state (the ops' columns, by
    /// group), so that a row's total is the sum of what it shows.
    fn new(counts: &lifecycle_ops::Counts, runs: Vec<RunRow>) -> Self {
        let cols = &counts.columns;
        let opens = |i: usize| i == 0 || cols[i - 1].group != cols[i].group;
        let mut groups: Vec<GroupHead> = Vec::new();
        for (i, c) in cols.iter().enumerate() {
            if opens(i) {
                groups.push(GroupHead { label: c.group.label(), span: 0 });
            }
            if let Some(g) = groups.last_mut() {
                g.span += 1;
            }
        }
        let cells = |n: &dyn Fn(&str) -> i64| -> Vec<CountCell> {
            cols.iter().enumerate().map(|(i, c)| CountCell { column: c.name, n: n(c.name), opens: opens(i) }).collect()
        };
        let rows = counts
            .vendors
            .iter()
            .map(|v| CountRow {
                vendor: v.vendor,
                cells: cells(&|c| v.counts.get(c).copied().unwrap_or(0)),
                total: v.total,
            })
            .collect();
        OverviewPage {
            groups,
            rows,
            totals: cells(&|c| counts.total_of(c)),
            total: counts.total,
            runs,
            dead_count: counts.total_of(RunState::Dead.as_str()),
        }
    }
}

pub(super) async fn overview(State(s): State<AdminState>) -> Page {
    let counts = lifecycle_ops::counts(&s.db).await?;
    let recent =
        lifecycle_ops::list_runs(&s.db, &dead(RunFilter { limit: Some(10), ..Default::default() }, false)).await?;
    Ok(s.render(&OverviewPage::new(&counts, recent.iter().map(RunRow::from).collect())))
}

#[cfg(test)]
mod overview_tests {
    use super::*;
    use lifecycle_ops::overview::{columns, Group, VendorCounts};
    use std::collections::BTreeMap;

    /// The numbers of `<strong>` cells in the page's "all" row.
    fn all_row(html: &str) -> Vec<i64> {
        let row = &html[html.find("<tr class=\"all\">").expect("the all row")..];
        let row = &row[..row.find("</tr>").unwrap()];
        row.split("<strong>").skip(1).map(|c| c[..c.find('<').unwrap()].parse().unwrap()).collect()
    }

    /// Every column the ops count has its header under its group, and the
    /// total is the sum of the cells the page shows (no hidden state).
    #[test]
    fn every_counted_state_has_a_column_and_the_total_is_their_sum() {
        let cols = columns();
        let counts: BTreeMap<String, i64> =
            cols.iter().enumerate().map(|(i, c)| (c.name.to_string(), i as i64 + 1)).collect();
        let total = counts.values().sum();
        let row =
            VendorCounts { vendor: VendorKind::Pipedrive, counts: counts.clone(), groups: BTreeMap::new(), total };
        let c = lifecycle_ops::Counts {
            columns: cols.clone(),
            vendors: vec![row],
            totals: counts,
            group_totals: BTreeMap::new(),
            total,
        };
        let html = OverviewPage::new(&c, Vec::new()).render().unwrap();

        let head = &html[html.find("<thead>").unwrap()..html.find("</thead>").unwrap()];
        let mut at = 0;
        for col in &cols {
            let found =
                head[at..].find(&format!(">{}</th>", col.name)).unwrap_or_else(|| panic!("{}: {head}", col.name));
            at += found + 1;
        }
        for s in RunState::ALL {
            assert!(head.contains(&format!(">{s}</th>")), "{s} has its column");
        }
        let mut from = 0;
        for g in Group::ALL {
            let span = cols.iter().filter(|c| c.group == g).count();
            let cell = format!("colspan=\"{span}\">{}</th>", g.label());
            let found = head[from..].find(&cell).unwrap_or_else(|| panic!("{cell}: {head}"));
            from += found + 1;
        }

        let shown = all_row(&html);
        assert_eq!(shown.len(), cols.len() + 1, "a cell per column, then the total");
        let (last, cells) = shown.split_last().unwrap();
        assert_eq!(cells.iter().sum::<i64>(), *last);
        assert_eq!(*last, total);
        // A count links to its runs, a discarded one to the dead runs page.
        assert!(html.contains("/runs?vendor=pipedrive&amp;state=scheduled\">1</a>"), "{html}");
        assert!(html.contains("/dead?vendor=pipedrive&amp;include_discarded=on\">"), "{html}");
    }
}
