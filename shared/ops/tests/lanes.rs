//! The lane leases' rules in process against a real database (SQLite and
//! PostgreSQL): a fleet of `Fleet`s taking, renewing, giving up and taking
//! over lanes, with the clock passed in so that expiry needs no sleeping.

use chrono::{DateTime, Duration as Span, Utc};
use lifecycle_domain::VendorKind;
use lifecycle_ops::lanes::{holders, Fleet, Round};
use lifecycle_store::testing::{Backend, TestDb};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const TTL: Duration = Duration::from_secs(10);

async fn database(backend: Backend) -> (TestDb, lifecycle_store::Db) {
    let test_db = TestDb::new(backend).await;
    // Several connections on both: the concurrent takers must really race.
    let db = lifecycle_store::connect(&test_db.url, 8).await.unwrap();
    lifecycle_store::migrate(&db).await.unwrap();
    (test_db, db)
}

fn fleet(db: &lifecycle_store::Db, n: usize) -> Vec<Fleet> {
    (0..n).map(|i| Fleet::new(db.clone(), format!("w{i}"), TTL)).collect()
}

/// Rounds for every worker in turn, each at `now`, until nothing changes for
/// two passes (a worker sees the others only from its next round on); the
/// last round of each.
async fn settle(workers: &[Fleet], now: DateTime<Utc>) -> Vec<Round> {
    let mut last: Vec<Round> = Vec::new();
    let mut quiet_passes = 0;
    for _ in 0..12 {
        let mut rounds = Vec::new();
        for w in workers {
            let r = w.round(now, &BTreeSet::new()).await.unwrap();
            // Give up at once (the worker drains first; nothing runs here).
            for lane in &r.give_up {
                assert!(w.release(*lane).await.unwrap(), "{} held {lane}", w.worker_id());
            }
            rounds.push(r);
        }
        let quiet = rounds.iter().all(|r| r.taken.is_empty() && r.give_up.is_empty());
        last = rounds;
        quiet_passes = if quiet { quiet_passes + 1 } else { 0 };
        if quiet_passes == 2 {
            return last;
        }
    }
    panic!("the lanes did not settle: {last:?}")
}

/// Lane → holder, from the table.
async fn table(db: &lifecycle_store::Db, now: DateTime<Utc>) -> BTreeMap<String, Option<String>> {
    holders(db, now).await.unwrap().into_iter().map(|h| (h.lane, h.holder)).collect()
}

fn counts(table: &BTreeMap<String, Option<String>>) -> BTreeMap<String, usize> {
    let mut c = BTreeMap::new();
    for h in table.values().flatten() {
        *c.entry(h.clone()).or_default() += 1;
    }
    c
}

async fn shares_take_up_to_share_and_release_above_it(backend: Backend) {
    let (_t, db) = database(backend).await;
    let t0 = Utc::now();
    let mut workers = fleet(&db, 1);
    // Alone: every lane.
    let r = workers[0].round(t0, &BTreeSet::new()).await.unwrap();
    assert_eq!((r.live_workers, r.share, r.held.len()), (1, 6, 6), "{r:?}");

    // Two more join: the first gives four up, each ends with exactly two.
    workers.extend((1..3).map(|i| Fleet::new(db.clone(), format!("w{i}"), TTL)));
    let rounds = settle(&workers, t0 + Span::seconds(1)).await;
    let t = table(&db, t0 + Span::seconds(1)).await;
    assert!(t.values().all(Option::is_some), "every lane held: {t:?}");
    assert_eq!(counts(&t).into_values().collect::<Vec<_>>(), vec![2, 2, 2], "{t:?}");
    for r in &rounds {
        assert_eq!((r.live_workers, r.share, r.held.len()), (3, 2, 2), "{r:?}");
    }

    // Five lanes on three workers: two, two and one.
    let five =
        [VendorKind::Pipedrive, VendorKind::Crowdstrike, VendorKind::Jira, VendorKind::Calendly, VendorKind::Circleci];
    let (_t5, db5) = database(backend).await;
    let workers: Vec<Fleet> = fleet(&db5, 3).into_iter().map(|f| f.with_lanes(&five)).collect();
    settle(&workers, t0).await;
    let t = table(&db5, t0).await;
    assert_eq!(t.len(), 5);
    let mut c: Vec<usize> = counts(&t).into_values().collect();
    c.sort();
    assert_eq!(c, vec![1, 2, 2], "each of three workers runs at least one of five lanes: {t:?}");

    // Six lanes on four workers: nobody idles (two, two, one, one).
    let (_t4, db4) = database(backend).await;
    let workers = fleet(&db4, 4);
    settle(&workers, t0).await;
    let mut c: Vec<usize> = counts(&table(&db4, t0).await).into_values().collect();
    c.sort();
    assert_eq!(c, vec![1, 1, 2, 2]);
}

async fn a_dead_workers_lanes_lapse_and_pass_to_the_others(backend: Backend) {
    let (_t, db) = database(backend).await;
    let t0 = Utc::now();
    let workers = fleet(&db, 3);
    settle(&workers, t0).await;
    let before = table(&db, t0).await;
    let dead: Vec<String> = before.iter().filter(|(_, h)| h.as_deref() == Some("w2")).map(|(l, _)| l.clone()).collect();
    assert_eq!(dead.len(), 2);

    // w2 stops renewing. Just before its leases lapse the others may not take them.
    let alive = &workers[..2];
    let early = settle(alive, t0 + TTL_S(1) - Span::milliseconds(1)).await;
    for r in &early {
        assert_eq!((r.live_workers, r.held.len()), (3, 2), "w2 still counts and holds its lanes: {r:?}");
    }
    assert_eq!(table(&db, t0 + TTL_S(1) - Span::milliseconds(1)).await, before);

    // Once lapsed: two workers live, share three, and w2's lanes are theirs.
    let later = t0 + TTL_S(1) + Span::seconds(1);
    let rounds = settle(alive, later).await;
    for r in &rounds {
        assert_eq!((r.live_workers, r.share, r.held.len()), (2, 3, 3), "{r:?}");
    }
    let after = table(&db, later).await;
    assert!(after.values().all(|h| matches!(h.as_deref(), Some("w0" | "w1"))), "{after:?}");
    for lane in &dead {
        assert_ne!(after[lane].as_deref(), Some("w2"));
    }
    // The survivors kept what they held: only w2's lanes moved.
    for (lane, h) in &before {
        if h.as_deref() != Some("w2") {
            assert_eq!(&after[lane], h, "{lane} moved");
        }
    }

    // A worker that leaves frees its lanes at once: the last one takes every lane.
    workers[0].leave().await.unwrap();
    let r = settle(&workers[1..2], later).await;
    assert_eq!((r[0].live_workers, r[0].held.len()), (1, 6), "{r:?}");
}

#[allow(non_snake_case)]
fn TTL_S(n: i32) -> Span {
    Span::from_std(TTL).unwrap() * n
}

async fn concurrent_takers_never_both_hold_a_lane(backend: Backend) {
    let (_t, db) = database(backend).await;
    for round in 0..5 {
        // Every lane free (a fresh "now" past every lease), eight workers present, all taking at once.
        let now = Utc::now() + TTL_S(3 * (round + 1));
        let workers: Vec<Fleet> = (0..8).map(|i| Fleet::new(db.clone(), format!("r{round}-w{i}"), TTL)).collect();
        for w in &workers {
            lifecycle_store::lanes::mark_present(&db, w.worker_id(), now).await.unwrap();
        }
        let none = BTreeSet::new();
        let rounds: Vec<Round> = futures::future::join_all(workers.iter().map(|w| w.round(now, &none)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // What each worker believes it took, against the table: no lane twice.
        let mut claimed: BTreeMap<VendorKind, Vec<String>> = BTreeMap::new();
        for (w, r) in workers.iter().zip(&rounds) {
            assert!(r.held.len() <= 1, "share of 6 lanes among 8 is 1: {r:?}");
            for lane in &r.held {
                claimed.entry(*lane).or_default().push(w.worker_id().to_string());
            }
        }
        let t = table(&db, now).await;
        for (lane, by) in &claimed {
            assert_eq!(by.len(), 1, "{lane} held by {by:?}");
            assert_eq!(t[lane.as_str()].as_deref(), Some(by[0].as_str()));
        }
        // A worker that loses a lane tries the next: every lane is taken.
        assert_eq!(claimed.len(), 6, "{claimed:?}");
    }
}

macro_rules! both {
    ($($name:ident),+) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Backend::Sqlite).await })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Backend::Postgres).await })+
        }
    };
}

both!(
    shares_take_up_to_share_and_release_above_it,
    a_dead_workers_lanes_lapse_and_pass_to_the_others,
    concurrent_takers_never_both_hold_a_lane
);
